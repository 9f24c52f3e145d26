package main

import (
	"math"
	"strconv"
	"strings"
)

// fmtNum formats a count or a measure with about three significant
// digits, thousands separated: 0.0123, 3.5, 42.1, 1,250.
func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 1000:
		return thousands(int64(math.Round(v)))
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return trimZeros(strconv.FormatFloat(v, 'f', 1, 64))
	case a >= 1:
		return trimZeros(strconv.FormatFloat(v, 'f', 2, 64))
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func trimZeros(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// thousands formats n with commas: 1,234,567.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtDollars formats an amount: $1,234, $12.35, $0.0123.
func fmtDollars(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1000:
		return "$" + thousands(int64(math.Round(v)))
	case a >= 1:
		return "$" + strconv.FormatFloat(v, 'f', 2, 64)
	case v == 0:
		return "$0"
	default:
		return "$" + strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// fmtSeconds formats a duration given in seconds: 12.3 s, 45.6 ms, 120 µs.
func fmtSeconds(s float64) string {
	a := math.Abs(s)
	switch {
	case a >= 1:
		return fmtNum(s) + " s"
	case a >= 1e-3:
		return fmtNum(s*1e3) + " ms"
	case a >= 1e-6:
		return fmtNum(s*1e6) + " µs"
	case s == 0:
		return "0 s"
	default:
		return fmtNum(s*1e9) + " ns"
	}
}

// fmtBytes formats a size: 9.8 MiB, 14.1 KiB, 512 B.
func fmtBytes(b float64) string {
	switch {
	case b >= 1<<20:
		return strconv.FormatFloat(b/(1<<20), 'f', 1, 64) + " MiB"
	case b >= 1<<10:
		return strconv.FormatFloat(b/(1<<10), 'f', 1, 64) + " KiB"
	default:
		return fmtNum(b) + " B"
	}
}

// fmtRatio formats ours ÷ comparison with three significant digits; "—"
// when the comparison is zero.
func fmtRatio(ours, comp float64) string {
	if comp == 0 || math.IsNaN(ours) || math.IsNaN(comp) {
		return "—"
	}
	r := ours / comp
	if r == 0 {
		return "0"
	}
	if a := math.Abs(r); a >= 1e-4 && a < 1e5 {
		return trimZeros(strconv.FormatFloat(r, 'f', decimalsFor(a), 64))
	}
	return strconv.FormatFloat(r, 'g', 3, 64)
}

// decimalsFor returns the decimals that show three significant digits of a.
func decimalsFor(a float64) int {
	d := 2 - int(math.Floor(math.Log10(a)))
	if d < 0 {
		return 0
	}
	return d
}
