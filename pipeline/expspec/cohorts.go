package expspec

import (
	"math"
)

// ScaleBound converts a clamp bound to fixed point exactly as the SQL
// converts event values: round half away from zero of bound * scale.
func ScaleBound(b float64, scale int64) int64 {
	return int64(math.Round(b * float64(scale)))
}

// AllCohort is the label of the cohort that holds every assigned unit.
const AllCohort = "(all)"
