package gateway

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"runtime/debug"
	"sync"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// FunctionError is the error a function returned, as InProcess reports it:
// in the terms of the error document Lambda's Go runtime posts for it, as
// lambdart.FunctionError does for function binaries.
type FunctionError struct {
	// Type is Lambda's errorType: the name of the error's Go type, without
	// package or pointer ("errorString" for errors.New, "wrapError" for
	// fmt.Errorf with %w), or the Type of a messages.InvokeResponse_Error.
	Type string
	// Message is Lambda's errorMessage: the error's text.
	Message string
}

func (e *FunctionError) Error() string { return e.Type + ": " + e.Message }

// ErrorMessage returns the errorMessage alone, e.g. "Unauthorized" for a
// Lambda authorizer that refuses a caller.
func (e *FunctionError) ErrorMessage() string { return e.Message }

// ErrorType returns the errorType alone.
func (e *FunctionError) ErrorType() string { return e.Type }

// functionError describes err as aws-lambda-go's runtime does before it
// posts it to Lambda (lambda.lambdaErrorResponse).
func functionError(err error) *FunctionError {
	if ive, ok := err.(messages.InvokeResponse_Error); ok {
		return &FunctionError{Type: ive.Type, Message: ive.Message}
	}
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return &FunctionError{Type: t.Name(), Message: err.Error()}
}

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

// Invoke runs function with payload. An error the function returns is
// reported as a *FunctionError; a panic in the function as an error, as
// Lambda reports a crashed invocation. When ctx ends first
// (the integration timeout), Invoke returns ctx's error at once and the
// late result is dropped, as API Gateway drops it.
func (p *InProcess) Invoke(ctx context.Context, function string, payload []byte) ([]byte, error) {
	pool, ok := p.handlers[function]
	if !ok {
		return nil, fmt.Errorf("no in-process function %q", function)
	}
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	lctx := lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       newID(),
		InvokedFunctionArn: "arn:aws:lambda:us-east-1:000000000000:function:" + function,
	})
	go func() {
		h := pool.Get().(lambda.Handler)
		defer func() {
			if r := recover(); r != nil {
				// A Handler that panicked is not reused.
				done <- result{nil, fmt.Errorf("Runtime.Panic: %v\n%s", r, debug.Stack())}
			}
		}()
		out, err := h.Invoke(lctx, payload)
		out = bytes.Clone(out) // before h, and its buffer pool, are used again
		pool.Put(h)
		if err != nil {
			done <- result{nil, functionError(err)}
			return
		}
		done <- result{out, nil}
	}()
	select {
	case r := <-done:
		return r.out, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("invocation of %s: %w", function, ctx.Err())
	}
}
