package stats

import "fmt"

// Kind is a metric kind. It selects the per-arm estimator used by Compare.
type Kind int

const (
	// Proportion is the share of units that converted: each unit's value
	// is 0 or 1 and the arm estimate is the mean. Its variance is the sample
	// variance supplied in Arm.Var, p̂(1-p̂)·n/(n-1) for 0/1 data, so the
	// test is the unpooled (Welch) two-sample test.
	Proportion Kind = iota
	// Mean is the per-unit mean of a per-unit sum or count.
	Mean
	// Ratio is Σx/Σy over units (for example clicks per session), estimated
	// per arm by x̄/ȳ with the delta-method variance.
	Ratio
)

var kindNames = [...]string{Proportion: "proportion", Mean: "mean", Ratio: "ratio"}

// String returns "proportion", "mean" or "ratio".
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, error) {
	for k, name := range kindNames {
		if s == name {
			return Kind(k), nil
		}
	}
	return 0, fmt.Errorf("stats: unknown metric kind %q (want proportion, mean or ratio)", s)
}

// MarshalText implements encoding.TextMarshaler. It never fails, so that
// a Comparison of an invalid kind still encodes ("Kind(9)", which
// UnmarshalText rejects).
func (k Kind) MarshalText() ([]byte, error) {
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

func (k Kind) valid() bool { return k >= Proportion && k <= Ratio }

// Direction is a direction of change in a metric: the desired direction of
// a goal metric, or the harmful direction of a guardrail.
type Direction int

const (
	// Increase means the metric going up (treatment − control > 0).
	Increase Direction = iota
	// Decrease means the metric going down.
	Decrease
)

// String returns "increase" or "decrease".
func (d Direction) String() string {
	switch d {
	case Increase:
		return "increase"
	case Decrease:
		return "decrease"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// ParseDirection is the inverse of Direction.String.
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "increase":
		return Increase, nil
	case "decrease":
		return Decrease, nil
	}
	return 0, fmt.Errorf("stats: unknown direction %q (want increase or decrease)", s)
}

// MarshalText implements encoding.TextMarshaler; like Kind's it never fails.
func (d Direction) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Direction) UnmarshalText(b []byte) error {
	v, err := ParseDirection(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
