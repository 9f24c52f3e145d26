package template

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// pseudoParameters are the values conditions see for CloudFormation's
// pseudo parameters. There is no stack to take them from: these are the
// local gateway's.
var pseudoParameters = map[string]string{
	"AWS::AccountId": "000000000000",
	"AWS::Partition": "aws",
	"AWS::Region":    "us-east-1",
	"AWS::StackName": "mastersocket-local",
	"AWS::StackId":   "arn:aws:cloudformation:us-east-1:000000000000:stack/mastersocket-local/00000000-0000-0000-0000-000000000000",
	"AWS::URLSuffix": "amazonaws.com",
}

// conditions evaluates the Conditions section of a template in long form
// (as intrinsics.ProcessYAML leaves it with NoProcess) against parameter
// values.
type conditions struct {
	defs     map[string]any    // the Conditions section as written
	declared map[string]bool   // the template's parameters
	params   map[string]string // their values: defaults and overrides
	values   map[string]bool   // conditions evaluated so far
	active   []string          // the conditions being evaluated, to report a cycle
}

// get returns the value of the condition name, evaluating it the first time.
// It fails if name is not defined, if conditions refer to each other in a
// cycle, or if the definition is not one this package evaluates.
func (c *conditions) get(name string) (bool, error) {
	if v, ok := c.values[name]; ok {
		return v, nil
	}
	def, ok := c.defs[name]
	if !ok {
		return false, fmt.Errorf("condition %s is not defined (the template defines %s)", name, namesOf(c.defs))
	}
	if i := slices.Index(c.active, name); i >= 0 {
		return false, newCycleError(c.active[i:])
	}
	c.active = append(c.active, name)
	v, err := c.eval(def)
	c.active = c.active[:len(c.active)-1]
	var cycle *cycleError
	if errors.As(err, &cycle) {
		return false, cycle // it names every condition in it
	}
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	c.values[name] = v
	return v, nil
}

// cycleError reports conditions that refer to each other in a cycle.
type cycleError struct{ names []string }

// newCycleError returns the cycle of names starting from its first name in
// sort order, so that the same cycle reads the same from wherever it is found.
func newCycleError(names []string) *cycleError {
	first := slices.Index(names, slices.Min(names))
	return &cycleError{names: append(slices.Clone(names[first:]), names[:first]...)}
}

func (e *cycleError) Error() string {
	return "conditions refer to each other in a cycle: " + strings.Join(e.names, " → ") + " → " + e.names[0]
}

func namesOf(m map[string]any) string {
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

// eval evaluates a condition function: Fn::Equals, Fn::Not, Fn::And,
// Fn::Or, or a reference to another condition. A reference is written
// {"Condition": name} in JSON; goformation's YAML reading turns YAML's
// !Condition name into the bare string name, which is read as a reference
// too (a bare string is no condition function otherwise).
func (c *conditions) eval(expr any) (bool, error) {
	if name, ok := expr.(string); ok {
		return c.get(name)
	}
	fn, arg, ok := intrinsic(expr)
	if !ok {
		return false, fmt.Errorf("got %s, want a condition function (Fn::Equals, Fn::Not, Fn::And, Fn::Or) or a Condition", jsonText(expr))
	}
	list, isList := arg.([]any)
	switch fn {
	case "Condition":
		name, ok := arg.(string)
		if !ok {
			return false, fmt.Errorf("Condition: got %s, want a condition name", jsonText(arg))
		}
		return c.get(name)
	case "Fn::Equals":
		if !isList || len(list) != 2 {
			return false, fmt.Errorf("Fn::Equals: got %s, want a list of two values", jsonText(arg))
		}
		a, err := c.value(list[0])
		if err != nil {
			return false, fmt.Errorf("Fn::Equals: %w", err)
		}
		b, err := c.value(list[1])
		if err != nil {
			return false, fmt.Errorf("Fn::Equals: %w", err)
		}
		return a == b, nil
	case "Fn::Not":
		if !isList || len(list) != 1 {
			return false, fmt.Errorf("Fn::Not: got %s, want a list of one condition", jsonText(arg))
		}
		v, err := c.eval(list[0])
		if err != nil {
			return false, fmt.Errorf("Fn::Not: %w", err)
		}
		return !v, nil
	case "Fn::And", "Fn::Or":
		// CloudFormation takes 2 to 10 conditions.
		if !isList || len(list) < 2 || len(list) > 10 {
			return false, fmt.Errorf("%s: got %s, want a list of 2 to 10 conditions", fn, jsonText(arg))
		}
		all, anyTrue := true, false
		for _, e := range list {
			v, err := c.eval(e)
			if err != nil {
				return false, fmt.Errorf("%s: %w", fn, err)
			}
			all, anyTrue = all && v, anyTrue || v
		}
		if fn == "Fn::And" {
			return all, nil
		}
		return anyTrue, nil
	}
	return false, fmt.Errorf("got %s, want a condition function (Fn::Equals, Fn::Not, Fn::And, Fn::Or) or a Condition", fn)
}

// value returns the string an argument of Fn::Equals stands for: a literal
// (numbers in decimal), a Ref to a parameter or a pseudo parameter, an
// Fn::Sub of those, or an Fn::Join of such values.
func (c *conditions) value(expr any) (string, error) {
	switch v := expr.(type) {
	case string:
		return v, nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	fn, arg, ok := intrinsic(expr)
	if !ok {
		return "", fmt.Errorf("got %s, want a string, a Ref to a parameter, an Fn::Sub or an Fn::Join", jsonText(expr))
	}
	switch fn {
	case "Ref":
		name, _ := arg.(string)
		return c.param(name)
	case "Fn::Sub":
		tmpl, ok := arg.(string)
		if !ok {
			return "", fmt.Errorf("Fn::Sub: got %s, want a string (variables are not supported in conditions here)", jsonText(arg))
		}
		var err error
		out := subVar.ReplaceAllStringFunc(tmpl, func(m string) string {
			v, e := c.param(m[2 : len(m)-1])
			if e != nil && err == nil {
				err = fmt.Errorf("Fn::Sub %q: %w", tmpl, e)
			}
			return v
		})
		return strings.ReplaceAll(out, "${!", "${"), err
	case "Fn::Join":
		list, _ := arg.([]any)
		if len(list) != 2 {
			return "", fmt.Errorf("Fn::Join: got %s, want [delimiter, [values]]", jsonText(arg))
		}
		delim, ok1 := list[0].(string)
		elems, ok2 := list[1].([]any)
		if !ok1 || !ok2 {
			return "", fmt.Errorf("Fn::Join: got %s, want [delimiter, [values]]", jsonText(arg))
		}
		parts := make([]string, len(elems))
		for i, e := range elems {
			s, err := c.value(e)
			if err != nil {
				return "", fmt.Errorf("Fn::Join: %w", err)
			}
			parts[i] = s
		}
		return strings.Join(parts, delim), nil
	}
	return "", fmt.Errorf("%s is not supported in conditions here (want Ref, Fn::Sub or Fn::Join)", fn)
}

// param returns the value of a parameter or a pseudo parameter.
func (c *conditions) param(name string) (string, error) {
	if v, ok := pseudoParameters[name]; ok {
		return v, nil
	}
	if !c.declared[name] {
		return "", fmt.Errorf("Ref %s: not a parameter of the template (conditions can refer only to parameters and pseudo parameters)", name)
	}
	v, ok := c.params[name]
	if !ok {
		return "", fmt.Errorf("Ref %s: the parameter has no default and no value was given", name)
	}
	return v, nil
}

// intrinsic returns the name and argument of a one-key map such as
// {"Fn::Equals": [...]}.
func intrinsic(v any) (name string, arg any, ok bool) {
	m, isMap := v.(map[string]any)
	if !isMap || len(m) != 1 {
		return "", nil, false
	}
	for k, a := range m {
		return k, a, true
	}
	return "", nil, false
}

// applyConditions does to tree, a template in long form, what
// CloudFormation does with its conditions given the parameter values: it
// evaluates the Conditions section (which it replaces by the results, true
// or false), removes each resource and output whose Condition is false,
// replaces every Fn::If by the branch its condition chooses, and removes
// every property (or list element) that is Ref AWS::NoValue. It fails if a
// condition cannot be evaluated, if a Condition or an Fn::If names a
// condition the template does not define, or if what remains refers to a
// resource that is not created (Ref, Fn::GetAtt, Fn::Sub or DependsOn).
func applyConditions(tree map[string]any, declared map[string]bool, params map[string]string) error {
	c := &conditions{declared: declared, params: params, values: map[string]bool{}}
	if raw, ok := tree["Conditions"]; ok {
		defs, isMap := raw.(map[string]any)
		if !isMap {
			return fmt.Errorf("Conditions: got %s, want a mapping of names to conditions", jsonText(raw))
		}
		c.defs = defs
	}
	var errs []error
	reported := map[string]bool{} // a cycle fails each of its conditions
	for _, name := range slices.Sorted(maps.Keys(c.defs)) {
		if _, err := c.get(name); err != nil && !reported[err.Error()] {
			reported[err.Error()] = true
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if len(c.defs) > 0 {
		evaluated := map[string]any{}
		for name, v := range c.values {
			evaluated[name] = v
		}
		tree["Conditions"] = evaluated
	}

	dropped := map[string]string{} // resource → the false condition that drops it
	for _, section := range []string{"Resources", "Outputs"} {
		entries, _ := tree[section].(map[string]any)
		for _, id := range slices.Sorted(maps.Keys(entries)) {
			entry, _ := entries[id].(map[string]any)
			raw, ok := entry["Condition"]
			if !ok {
				continue
			}
			kind := strings.ToLower(strings.TrimSuffix(section, "s"))
			name, isString := raw.(string)
			if !isString {
				errs = append(errs, fmt.Errorf("%s %s: Condition: got %s, want a condition name", kind, id, jsonText(raw)))
				continue
			}
			v, err := c.get(name)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", kind, id, err))
				continue
			}
			if !v {
				delete(entries, id)
				if section == "Resources" {
					dropped[id] = name
				}
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	for _, section := range slices.Sorted(maps.Keys(tree)) {
		if section == "Conditions" || section == "Parameters" {
			continue
		}
		v, keep, err := c.resolveIfs(tree[section], section)
		if err != nil {
			return err
		}
		if keep {
			tree[section] = v
		} else {
			delete(tree, section)
		}
	}
	return refsToDropped(tree, dropped)
}

// resolveIfs replaces each Fn::If in v by the branch its condition chooses
// and reports keep false when v is (or resolves to) Ref AWS::NoValue, which
// its container then drops. path names v in errors.
func (c *conditions) resolveIfs(v any, path string) (resolved any, keep bool, err error) {
	switch x := v.(type) {
	case map[string]any:
		if fn, arg, ok := intrinsic(x); ok {
			switch {
			case fn == "Ref" && arg == "AWS::NoValue":
				return nil, false, nil
			case fn == "Fn::If":
				list, _ := arg.([]any)
				if len(list) != 3 {
					return nil, false, fmt.Errorf("%s: Fn::If: got %s, want [condition, value if true, value if false]", path, jsonText(arg))
				}
				name, isString := list[0].(string)
				if !isString {
					return nil, false, fmt.Errorf("%s: Fn::If: got condition %s, want a condition name", path, jsonText(list[0]))
				}
				cond, err := c.get(name)
				if err != nil {
					return nil, false, fmt.Errorf("%s: Fn::If: %w", path, err)
				}
				if cond {
					return c.resolveIfs(list[1], path)
				}
				return c.resolveIfs(list[2], path)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			r, keep, err := c.resolveIfs(x[k], path+"."+k)
			if err != nil {
				return nil, false, err
			}
			if keep {
				x[k] = r
			} else {
				delete(x, k)
			}
		}
		return x, true, nil
	case []any:
		out := make([]any, 0, len(x))
		for i, e := range x {
			r, keep, err := c.resolveIfs(e, path+"["+strconv.Itoa(i)+"]")
			if err != nil {
				return nil, false, err
			}
			if keep {
				out = append(out, r)
			}
		}
		return out, true, nil
	}
	return v, true, nil
}

// refsToDropped reports every reference (Ref, Fn::GetAtt, Fn::Sub,
// DependsOn) of the resources, outputs and Globals left in tree to a
// resource a false condition removed: CloudFormation refuses such a
// template.
func refsToDropped(tree map[string]any, dropped map[string]string) error {
	if len(dropped) == 0 {
		return nil
	}
	var errs []error
	check := func(where string, v any) {
		seen := map[string]bool{}
		refs(v, func(name string) {
			if cond, ok := dropped[name]; ok && !seen[name] {
				seen[name] = true
				errs = append(errs, fmt.Errorf("%s refers to %s, which is not created when condition %s is false", where, name, cond))
			}
		})
	}
	for _, section := range []string{"Resources", "Outputs"} {
		entries, _ := tree[section].(map[string]any)
		kind := strings.ToLower(strings.TrimSuffix(section, "s"))
		for _, id := range slices.Sorted(maps.Keys(entries)) {
			entry, _ := entries[id].(map[string]any)
			check(kind+" "+id, entry)
			switch d := entry["DependsOn"].(type) {
			case string:
				check(kind+" "+id+" (DependsOn)", map[string]any{"Ref": d})
			case []any:
				for _, e := range d {
					check(kind+" "+id+" (DependsOn)", map[string]any{"Ref": e})
				}
			}
		}
	}
	if g, ok := tree["Globals"]; ok {
		check("Globals", g)
	}
	return errors.Join(errs...)
}

// refs calls visit with the logical id (or parameter name) each Ref,
// Fn::GetAtt and Fn::Sub variable in v refers to.
func refs(v any, visit func(name string)) {
	switch x := v.(type) {
	case map[string]any:
		if fn, arg, ok := intrinsic(x); ok {
			switch fn {
			case "Ref":
				if s, ok := arg.(string); ok {
					visit(s)
				}
				return
			case "Fn::GetAtt":
				switch a := arg.(type) {
				case string:
					res, _, _ := strings.Cut(a, ".")
					visit(res)
				case []any:
					if len(a) > 0 {
						if s, ok := a[0].(string); ok {
							visit(s)
						}
					}
				}
				return
			case "Fn::Sub":
				tmpl, _ := arg.(string)
				var vars map[string]any
				if list, ok := arg.([]any); ok && len(list) == 2 {
					tmpl, _ = list[0].(string)
					vars, _ = list[1].(map[string]any)
					refs(vars, visit)
				}
				for _, m := range subVar.FindAllStringSubmatch(tmpl, -1) {
					name, _, _ := strings.Cut(m[1], ".")
					if _, isVar := vars[m[1]]; !isVar {
						visit(name)
					}
				}
				return
			}
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			refs(x[k], visit)
		}
	case []any:
		for _, e := range x {
			refs(e, visit)
		}
	}
}
