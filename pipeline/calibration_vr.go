package pipeline

import (
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// CalibrationAdjusted computes the variance-reduced estimates spec lists
// (variance_reduction) from a calibration pass's exact leaf cells, as an
// exact run writes them to adjusted.csv.
func CalibrationAdjusted(spec *expspec.Spec, in CalibrationInput) ([]analysis.AdjustedRow, error) {
	cells, err := analysis.CompleteCells(spec, in.Cells)
	if err != nil {
		return nil, err
	}
	return analysis.VarianceReductions(spec, cells, in.Cross)
}
