package report

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Display precision, in significant digits.
const (
	sigEffect = 3 // effects, intervals, MDE
	sigMean   = 4 // means
	sigP      = 2 // p-values
	sigStat   = 4 // test statistics, check values, budgets
)

// na is shown for a number that is missing, NaN or infinite.
const na = "n/a"

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// num formats v with sig significant digits: plainly for 1e-4 ≤ |v| < 1e9,
// in exponent form outside. It uses only strconv, so the text depends on
// the value alone. A negative number gets a true minus sign (U+2212).
func num(v float64, sig int) string {
	if !finite(v) {
		return na
	}
	if v == 0 {
		return "0"
	}
	e := strconv.FormatFloat(v, 'e', sig-1, 64) // d.ddde±XX, already rounded
	exp, err := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if err != nil { // cannot happen: strconv always writes an exponent
		return minus(e)
	}
	if exp < -4 || exp >= 9 {
		return minus(e)
	}
	r, _ := strconv.ParseFloat(e, 64)
	return minus(strconv.FormatFloat(r, 'f', max(0, sig-1-exp), 64))
}

// numTrim is num without trailing zeros in the fraction: 0.04200 → 0.042,
// 1.000e-06 → 1e-06. Used where the digits carry no precision claim
// (thresholds, budgets, noise scales).
func numTrim(v float64, sig int) string {
	s := num(v, sig)
	mant, exp := s, ""
	if i := strings.IndexByte(s, 'e'); i >= 0 {
		mant, exp = s[:i], s[i:]
	}
	if strings.Contains(mant, ".") {
		mant = strings.TrimRight(strings.TrimRight(mant, "0"), ".")
	}
	return mant + exp
}

// signed is num with an explicit "+" on positive values.
func signed(v float64, sig int) string {
	s := num(v, sig)
	if finite(v) && v > 0 {
		return "+" + s
	}
	return s
}

// minus replaces a leading hyphen with U+2212 MINUS SIGN.
func minus(s string) string {
	if strings.HasPrefix(s, "-") {
		return "−" + s[1:]
	}
	return s
}

// pct formats a fraction as a signed percentage with sig significant
// digits, but at most two decimals between 0.01% and 1%: 0.0512 → "+5.12%",
// 0.007 → "+0.70%", 0.00004 → "+0.00400%".
func pct(v float64, sig int) string {
	if !finite(v) {
		return na
	}
	p := float64(v * 100)
	if a := math.Abs(p); a >= 0.01 && a < 1 {
		s := minus(strconv.FormatFloat(p, 'f', 2, 64))
		if p > 0 {
			s = "+" + s
		}
		return s + "%"
	}
	return signed(p, sig) + "%"
}

// pval formats a p-value; below 0.0001 it is shown as "< 0.0001".
func pval(p float64) string {
	if !finite(p) {
		return na
	}
	if p < 1e-4 {
		return "< 0.0001"
	}
	return num(p, sigP)
}

// count formats an integer with comma thousands separators.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "−" + b.String()
	}
	return b.String()
}

// countf formats a count that may be fractional (a noisy count): whole
// numbers get thousands separators, others sigStat digits.
func countf(v float64) string {
	if finite(v) && v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return count(int64(v))
	}
	return num(v, sigStat)
}

// coord formats an SVG coordinate rounded to 2 decimals, without trailing
// zeros and never as "-0".
func coord(v float64) string {
	if !finite(v) {
		return "0"
	}
	s := strconv.FormatFloat(math.Round(v*100)/100, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" || s == "" {
		return "0"
	}
	return s
}

// short returns the first 12 characters of a hash.
func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// truncate shortens s to at most n runes, ending in "…" when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// get dereferences p; ok is false when p is nil or not finite.
func get(p *float64) (v float64, ok bool) {
	if p == nil || !finite(*p) {
		return 0, false
	}
	return *p, true
}
