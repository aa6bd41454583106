package main

import (
	"encoding/json"
	"strconv"
	"strings"
)

// jsonEqual compares two values parsed with UseNumber the way serde_json compares its values:
// objects as maps, and numbers by value within their kind, so 42 equals 42 but not 42.0.
func jsonEqual(a, b any) bool {
	switch a := a.(type) {
	case json.Number:
		b, ok := b.(json.Number)
		return ok && numbersEqual(a, b)
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !jsonEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for key, value := range a {
			other, ok := b[key]
			if !ok || !jsonEqual(value, other) {
				return false
			}
		}
		return true
	}
	return a == b // nil, bool and string compare by value
}

func numbersEqual(a, b json.Number) bool {
	aInteger, bInteger := isInteger(a), isInteger(b)
	if aInteger != bInteger {
		return false
	}
	if aInteger {
		if x, err := strconv.ParseInt(string(a), 10, 64); err == nil {
			y, err := strconv.ParseInt(string(b), 10, 64)
			return err == nil && x == y
		}
		if x, err := strconv.ParseUint(string(a), 10, 64); err == nil {
			y, err := strconv.ParseUint(string(b), 10, 64)
			return err == nil && x == y
		}
	}
	x, errA := strconv.ParseFloat(string(a), 64)
	y, errB := strconv.ParseFloat(string(b), 64)
	return errA == nil && errB == nil && x == y
}

func isInteger(n json.Number) bool { return !strings.ContainsAny(string(n), ".eE") }
