package localrun

import (
	"fmt"
	"time"

	"github.com/mastersocket/mastersocket/internal/emulator/lambdaapi"
	"github.com/mastersocket/mastersocket/internal/emulator/template"
)

// newLambdaAPI returns the local Lambda Invoke API for the template's
// functions: each answers to its logical id and to its FunctionName, and
// takes its timeout and its EventInvokeConfig from the template.
func newLambdaAPI(tmpl *template.Template, env envResolver, inv functionSet, o Options) (*lambdaapi.API, error) {
	lookup := env.lookup()
	var funcs []lambdaapi.Function
	fns := tmpl.Functions()
	for _, id := range tmpl.FunctionIDs() {
		fn := fns[id]
		f := lambdaapi.Function{Name: id, Timeout: time.Duration(fn.Timeout) * time.Second}
		if fn.FunctionName != "" {
			name, err := template.Expand(fn.FunctionName, lookup)
			if err != nil {
				return nil, fmt.Errorf("function %s: FunctionName: %w", id, err)
			}
			f.Aliases = append(f.Aliases, name)
		}
		f.Async.MaxRetries = fn.Async.MaximumRetryAttempts
		if age := fn.Async.MaximumEventAgeInSeconds; age != nil {
			f.Async.MaxEventAge = time.Duration(*age) * time.Second
		}
		if dest := fn.Async.OnFailure; dest != "" {
			arn, err := template.Expand(dest, lookup)
			if err != nil {
				return nil, fmt.Errorf("function %s: OnFailure: %w", id, err)
			}
			f.Async.OnFailure = arn
		}
		funcs = append(funcs, f)
	}
	return lambdaapi.New(lambdaapi.Config{
		Region: localRegion, AccountID: localAccount, Functions: funcs, Invoker: inv,
		RetryDelays: o.AsyncRetryDelays, Logger: o.Logger,
	})
}
