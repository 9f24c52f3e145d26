package localgw

import (
	"bytes"
	"context"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// InProcess runs functions in this process: each invocation goes through
// aws-lambda-go's handler machinery (lambda.NewHandler(f).Invoke) with the
// event JSON, as the Lambda runtime would run it, concurrently and without
// a process of its own.
//
// aws-lambda-go's Handler.Invoke returns bytes of a pooled buffer that it
// puts back in its pool as it returns, so two concurrent invocations of one
// Handler can overwrite each other's response. InProcess therefore gives
// each concurrent invocation a Handler of its own, and copies the response
// before the Handler is used again.
type InProcess struct {
	handlers map[string]*sync.Pool
}

// NewInProcess returns an invoker of handler functions by name; each
// function has a signature that lambda.Start accepts.
func NewInProcess(funcs map[string]any) *InProcess {
	p := &InProcess{handlers: make(map[string]*sync.Pool, len(funcs))}
	for name, f := range funcs {
		p.handlers[name] = &sync.Pool{New: func() any { return lambda.NewHandler(f) }}
	}
	return p
}

// Invoke runs function with payload. A panic in the function is reported as
// an error, as Lambda reports a crashed invocation.
func (p *InProcess) Invoke(ctx context.Context, function string, payload []byte) (out []byte, err error) {
	pool, ok := p.handlers[function]
	if !ok {
		return nil, fmt.Errorf("no in-process function %q", function)
	}
	h := pool.Get().(lambda.Handler)
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("Runtime.Panic: %v\n%s", r, debug.Stack())
			return // a Handler that panicked is not reused
		}
		pool.Put(h)
	}()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       newID(),
		InvokedFunctionArn: "arn:aws:lambda:us-east-1:000000000000:function:" + function,
	})
	out, err = h.Invoke(ctx, payload)
	return bytes.Clone(out), err
}
