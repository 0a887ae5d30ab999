package analysis

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// simNights simulates an A/A experiment's cumulative (all) figures over
// nights: each night about 300 new units per arm (Binomial(600, ½)),
// each converting g nights after exposure, g geometric with p = 0.05 (0
// included). gapNight (≥ 0) keeps only a tenth of that night's new units
// (a data gap); breakNight (≥ 0) stops logging conversions from that
// night on (a broken logger). It returns the series line of converted,
// control vs treatment.
func simNights(rng *rand.Rand, nights, gapNight, breakNight int) SeriesLine {
	type arm struct{ n, conv []int }
	arms := [2]arm{}
	for a := range arms {
		arms[a] = arm{n: make([]int, nights), conv: make([]int, nights)}
		convDay := make([]int, nights+1)
		total := 0
		for d := 0; d < nights; d++ {
			k := 0
			for range 600 {
				if rng.IntN(2) == 0 {
					k++
				}
			}
			if d == gapNight {
				k /= 10
			}
			total += k
			for range k {
				g := int(math.Floor(math.Log(1-rng.Float64()) / math.Log(0.95)))
				if c := d + g; c < nights && (breakNight < 0 || c < breakNight) {
					convDay[c]++
				}
			}
			arms[a].n[d] = total
		}
		cum := 0
		for d := 0; d < nights; d++ {
			cum += convDay[d]
			arms[a].conv[d] = cum
		}
	}
	l := SeriesLine{Cohort: "(all)", Metric: "converted", Variant: "treatment", Control: "control"}
	for d := 0; d < nights; d++ {
		mean := float64(arms[0].conv[d]) / float64(arms[0].n[d])
		l.Points = append(l.Points, SeriesPoint{Night: strconv.Itoa(d), Status: "released",
			NControl: strconv.Itoa(arms[0].n[d]), NVariant: strconv.Itoa(arms[1].n[d]), MeanControl: FormatFloat(mean)})
	}
	return l
}

func nightNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}

// TestNightAnomaliesPlanted: a night with a tenth of the usual new units
// flags that arm's daily units; a logger that stops recording conversions
// flags the control mean on the night it breaks; a gap night in the
// history is skipped, not flagged.
func TestNightAnomaliesPlanted(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 4))
	const nights = 14
	gap, err := NightAnomalies([]SeriesLine{simNights(rng, nights, nights-1, -1)}, nightNames(nights))
	if err != nil {
		t.Fatal(err)
	}
	if len(gap.Series) != 3 || !gap.Series[0].Flagged || !gap.Series[1].Flagged || gap.Series[2].Kind != "control_mean" {
		t.Errorf("data gap tonight: %+v", gap.Series)
	}
	brk, err := NightAnomalies([]SeriesLine{simNights(rng, nights, -1, nights-1)}, nightNames(nights))
	if err != nil {
		t.Fatal(err)
	}
	if s := brk.Series[2]; !s.Flagged || *s.Value >= *s.Predicted {
		t.Errorf("logger break tonight: %+v", s)
	}
	if brk.Series[0].Flagged || brk.Series[1].Flagged {
		t.Errorf("a logger break flagged the volumes: %+v", brk.Series[:2])
	}
	// A missing night: daily units of it and the next are missing, the
	// rest still checked.
	l := simNights(rng, nights, -1, -1)
	l.Points[5] = SeriesPoint{Night: "5", Status: "gap"}
	miss, err := NightAnomalies([]SeriesLine{l}, nightNames(nights))
	if err != nil {
		t.Fatal(err)
	}
	if s := miss.Series[0]; s.Status != "checked" || s.History != 11 || s.PValue == nil {
		t.Errorf("history with a gap: %+v", s)
	}
	// Too few nights to check: a status and no p-value (not p = 1, which
	// would read as a check that found nothing).
	early, err := NightAnomalies([]SeriesLine{simNights(rng, 4, -1, -1)}, nightNames(4))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range early.Series {
		if s.Status == "checked" || s.PValue != nil || s.Flagged {
			t.Errorf("a 4-night history was checked: %+v", s)
		}
	}
}

// TestNightAnomaliesFalseAlarmRate simulates A/A histories of 14 nights
// (nights 7-13 checked: 7 nights × 3 series each) and measures the share
// of checks flagged and of nights with any flag. The model behind each
// check (independent errors around a line) holds for daily units but not
// for cumulative means, whose night-to-night steps are correlated: the
// measured rates are what docs/PRODUCT.md states, and each must stay
// within 4.5 binomial standard deviations of the nominal level or below it.
func TestNightAnomaliesFalseAlarmRate(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	rng := rand.New(rand.NewPCG(21, 9))
	const sims, nights = 2000, 14
	flags := map[string]int{}
	checks := map[string]int{}
	nightsAny, nightsChecked := 0, 0
	for range sims {
		l := simNights(rng, nights, -1, -1)
		for tonight := 7; tonight < nights; tonight++ {
			cut := l
			cut.Points = l.Points[:tonight+1]
			info, err := NightAnomalies([]SeriesLine{cut}, nightNames(tonight+1))
			if err != nil {
				t.Fatal(err)
			}
			nightsChecked++
			if len(info.Flagged) > 0 {
				nightsAny++
			}
			for _, s := range info.Series {
				checks[s.Kind]++
				if s.Flagged {
					flags[s.Kind]++
				}
			}
		}
	}
	level := 0.01 / 3
	for _, k := range []string{"daily_units", "control_mean"} {
		rate := float64(flags[k]) / float64(checks[k])
		sd := math.Sqrt(level * (1 - level) / float64(checks[k]))
		t.Logf("%s: %d of %d checks flagged (%.5f; level %.5f)", k, flags[k], checks[k], rate, level)
		if rate > level+4.5*sd {
			t.Errorf("%s false-alarm rate %.5f above its level %.5f", k, rate, level)
		}
	}
	night := float64(nightsAny) / float64(nightsChecked)
	t.Logf("nights with any flag: %d of %d (%.5f; alpha 0.01)", nightsAny, nightsChecked, night)
	if sd := math.Sqrt(0.01 * 0.99 / float64(nightsChecked)); night > 0.01+4.5*sd {
		t.Errorf("per-night false-alarm rate %.5f above alpha 0.01", night)
	}
}
