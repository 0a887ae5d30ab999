package analysis

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// Success criteria are fixed before launch. The decision-relevant part of
// a spec — its goals and guardrails with their definitions, directions and
// margins, α, the correction, the design (fixed horizon and its planned
// end, or always-valid), CUPED, the SRM threshold, the variants' design
// allocation, the quality thresholds, and what decides which units and
// events count (template pins, cohorts, persona-algorithm version, column
// mapping, fixed-point scale, privacy settings) — is locked on the first
// night analysed in the experiment's window. A later night whose spec changes it
// is not silently applied: decisions.json and the report say which
// criteria the verdict used, since which night, and what changed on which
// night, found from the earlier nights' manifests in the output folder.
// The history read is recorded in the manifest, so a replay decides with
// the same history whatever is on disk then.

// Criteria is the decision-relevant part of a spec.
type Criteria struct {
	Experiment         string                  `json:"experiment"`
	WindowStart        string                  `json:"window_start"`
	PlannedEnd         string                  `json:"planned_end"`
	Variants           []expspec.Variant       `json:"variants"` // by name
	Metrics            []expspec.Metric        `json:"metrics"`  // goals and guardrails, by name
	Statistics         criteriaStatistics      `json:"statistics"`
	Quality            map[string]expspec.Gate `json:"quality,omitempty"`
	Templates          map[string]string       `json:"templates"`
	Cohorts            expspec.Cohorts         `json:"cohorts"`
	PersonaAlgoVersion string                  `json:"persona_algo_version,omitempty"`
	Columns            expspec.ColumnMapping   `json:"columns"`
	Privacy            criteriaPrivacy         `json:"privacy"`
}

// criteriaPrivacy is the part of the privacy settings that changes what
// is released (not where the key comes from).
type criteriaPrivacy struct {
	Enabled   bool    `json:"enabled"`
	Epsilon   float64 `json:"epsilon,omitempty"`
	Delta     float64 `json:"delta,omitempty"`
	RunShare  float64 `json:"run_share,omitempty"`
	GateShare float64 `json:"gate_share,omitempty"`
}

type criteriaStatistics struct {
	Alpha              float64                `json:"alpha"`
	FixedPointDecimals *int                   `json:"fixed_point_decimals"`
	Correction         string                 `json:"correction"`
	CorrectionScope    string                 `json:"correction_scope"`
	Sequential         *expspec.Sequential    `json:"sequential,omitempty"`
	CUPED              *expspec.CUPEDSettings `json:"cuped,omitempty"`
	SRMThreshold       float64                `json:"srm_threshold"`
	// The engine and its decision thresholds (empty for the default
	// frequentist engine, so that earlier criteria keep their hash).
	Engine   string                    `json:"engine,omitempty"`
	Bayesian *expspec.BayesianSettings `json:"bayesian,omitempty"`
}

// criteriaOf returns a validated spec's criteria, as canonical JSON, and
// its SHA-256.
func criteriaOf(spec *expspec.Spec) (json.RawMessage, string, error) {
	end := spec.Window.End
	if spec.Window.PlannedEnd != "" {
		end = spec.Window.PlannedEnd
	}
	c := Criteria{
		Experiment:  spec.Experiment,
		WindowStart: spec.Window.Start,
		PlannedEnd:  end,
		Variants:    append([]expspec.Variant(nil), spec.Variants...),
		Metrics:     []expspec.Metric{},
		Statistics: criteriaStatistics{
			Alpha:              spec.Statistics.Alpha,
			FixedPointDecimals: spec.Statistics.FixedPointDecimals,
			Correction:         spec.Statistics.Correction,
			CorrectionScope:    spec.Statistics.CorrectionScope,
			Sequential:         spec.Statistics.Sequential,
			CUPED:              spec.Statistics.CUPED,
			SRMThreshold:       spec.Statistics.SRMThreshold,
			Engine:             spec.Statistics.Engine,
			Bayesian:           spec.Statistics.Bayesian,
		},
		Quality:            spec.Quality,
		Templates:          spec.Templates,
		Cohorts:            spec.Cohorts,
		PersonaAlgoVersion: spec.PersonaAlgoVersion,
		Columns:            spec.Inputs.Columns,
	}
	if p := spec.Privacy; p != nil {
		c.Privacy = criteriaPrivacy{Enabled: p.Enabled, Epsilon: p.Epsilon, Delta: p.Delta, RunShare: p.RunShare, GateShare: p.GateShare}
	}
	for _, m := range spec.Metrics {
		if m.Role == "goal" || m.Role == "guardrail" {
			c.Metrics = append(c.Metrics, m)
		}
	}
	// Order is presentation, not a criterion.
	sort.Slice(c.Variants, func(i, j int) bool { return c.Variants[i].Name < c.Variants[j].Name })
	sort.Slice(c.Metrics, func(i, j int) bool { return c.Metrics[i].Name < c.Metrics[j].Name })
	b, err := json.Marshal(c)
	if err != nil {
		return nil, "", fmt.Errorf("criteria: %w", err)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}

// CriteriaSegment is a run of earlier nights with the same criteria: the
// first night of the run, the criteria's hash and the criteria.
type CriteriaSegment struct {
	Night    string          `json:"night"`
	SHA256   string          `json:"sha256"`
	Criteria json.RawMessage `json:"criteria"`
}

// CriteriaHistory is what the earlier nights' manifests said: the
// segments in night order, and the nights whose manifest could not be
// read (shown, never silently skipped).
type CriteriaHistory struct {
	Segments   []CriteriaSegment `json:"segments"`
	Unreadable []string          `json:"unreadable,omitempty"`
}

// ReadCriteriaHistory reads the criteria of every committed night in
// expDir from the window's first day up to (not including) date. A night
// that cannot be read — a folder or manifest without read permission, a
// manifest that does not parse or belongs to another experiment or night
// — is listed as unreadable, never skipped silently; a night folder
// without a manifest holds no committed run (a run commits its manifest
// last). Symbolic links are followed.
func ReadCriteriaHistory(expDir, experiment, windowStart, date string) CriteriaHistory {
	h := CriteriaHistory{Segments: []CriteriaSegment{}}
	entries, err := os.ReadDir(expDir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			h.Unreadable = append(h.Unreadable, "(the output folder: "+err.Error()+")")
		}
		return h
	}
	first := windowStart
	if len(first) > 10 {
		first = first[:10]
	}
	var nights []string
	for _, e := range entries {
		n := e.Name()
		if _, err := time.Parse("2006-01-02", n); err != nil || n < first || n >= date {
			continue
		}
		nights = append(nights, n)
	}
	sort.Strings(nights)
	for _, n := range nights {
		c, sum, state := nightCriteria(filepath.Join(expDir, n), experiment, n)
		switch state {
		case nightNone:
			continue
		case nightUnreadable:
			h.Unreadable = append(h.Unreadable, n)
			continue
		}
		if k := len(h.Segments); k == 0 || h.Segments[k-1].SHA256 != sum {
			h.Segments = append(h.Segments, CriteriaSegment{Night: n, SHA256: sum, Criteria: c})
		}
	}
	return h
}

type nightState int

const (
	nightOK nightState = iota
	nightNone
	nightUnreadable
)

// nightCriteria reads one night's criteria from its manifest: the
// recorded criteria, or, for a manifest written before they were
// recorded, the criteria of its resolved spec.
func nightCriteria(dir, experiment, night string) (json.RawMessage, string, nightState) {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, "", nightNone
	case err != nil || !st.IsDir():
		return nil, "", nightUnreadable
	}
	if _, err := os.ReadDir(dir); err != nil {
		return nil, "", nightUnreadable
	}
	b, err := diskio.ReadRegularFile(filepath.Join(dir, "manifest.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nightNone
	}
	if err != nil {
		return nil, "", nightUnreadable
	}
	var m struct {
		Experiment  string          `json:"experiment"`
		NominalDate string          `json:"nominal_date"`
		Spec        json.RawMessage `json:"spec"`
		Criteria    json.RawMessage `json:"criteria"`
	}
	if json.Unmarshal(b, &m) != nil || m.Experiment != experiment || m.NominalDate != night {
		return nil, "", nightUnreadable
	}
	if len(m.Criteria) > 0 {
		// The manifest is indented; the hash is of the compact form.
		var c bytes.Buffer
		if json.Compact(&c, m.Criteria) != nil {
			return nil, "", nightUnreadable
		}
		sum := sha256.Sum256(c.Bytes())
		return c.Bytes(), hex.EncodeToString(sum[:]), nightOK
	}
	var s expspec.Spec
	if json.Unmarshal(m.Spec, &s) != nil {
		return nil, "", nightUnreadable
	}
	c, sum, err := criteriaOf(&s)
	if err != nil {
		return nil, "", nightUnreadable
	}
	return c, sum, nightOK
}

// CriteriaInfo is the criteria block of decisions.json.
type CriteriaInfo struct {
	// SHA256 is the hash of the criteria the verdict used: tonight's spec's.
	SHA256 string `json:"sha256"`
	// LockedNight and LockedSHA256 are the first night analysed in the
	// window and its criteria (tonight's when there is no earlier night).
	LockedNight  string `json:"locked_night"`
	LockedSHA256 string `json:"locked_sha256"`
	// Changed is true when the verdict's criteria differ from the locked.
	Changed bool `json:"changed"`
	// Changes lists each night the criteria changed, tonight included.
	Changes []CriteriaChange `json:"changes"`
	// Unreadable lists earlier nights whose manifest could not be read.
	Unreadable []string `json:"unreadable_nights,omitempty"`
	// Used says in words which criteria the verdict used.
	Used string `json:"used"`
}

// CriteriaChange is one night on which the criteria changed, and the
// fields that did (dotted paths; metrics and variants by name).
type CriteriaChange struct {
	Night  string   `json:"night"`
	From   string   `json:"from_sha256"`
	To     string   `json:"to_sha256"`
	Fields []string `json:"fields"`
}

// criteriaInfo compares tonight's criteria with the history.
func criteriaInfo(date string, tonight json.RawMessage, sum string, h CriteriaHistory) CriteriaInfo {
	segs := append(append([]CriteriaSegment{}, h.Segments...), CriteriaSegment{Night: date, SHA256: sum, Criteria: tonight})
	info := CriteriaInfo{SHA256: sum, LockedNight: segs[0].Night, LockedSHA256: segs[0].SHA256, Changes: []CriteriaChange{}, Unreadable: h.Unreadable}
	for i := 1; i < len(segs); i++ {
		if segs[i].SHA256 == segs[i-1].SHA256 {
			continue
		}
		info.Changes = append(info.Changes, CriteriaChange{Night: segs[i].Night, From: segs[i-1].SHA256, To: segs[i].SHA256,
			Fields: ChangedFields(segs[i-1].Criteria, segs[i].Criteria)})
	}
	info.Changed = sum != info.LockedSHA256
	switch {
	case info.Changed:
		var nights []string
		for _, c := range info.Changes {
			nights = append(nights, c.Night+" ("+strings.Join(c.Fields, ", ")+")")
		}
		info.Used = fmt.Sprintf("this night's spec's criteria (%.12s), NOT those locked on %s (%.12s): changed on %s",
			sum, info.LockedNight, info.LockedSHA256, strings.Join(nights, "; "))
	case len(info.Changes) > 0:
		info.Used = fmt.Sprintf("the criteria locked on %s (%.12s), restored after a change", info.LockedNight, sum)
	case info.LockedNight == date:
		info.Used = fmt.Sprintf("this night's criteria (%.12s), locked now: the first night analysed in the window", sum)
	default:
		info.Used = fmt.Sprintf("the criteria locked on %s (%.12s), unchanged since", info.LockedNight, sum)
	}
	return info
}

// ChangedFields lists the dotted paths whose values differ between two
// criteria documents; list elements that have a name are keyed by it.
func ChangedFields(a, b json.RawMessage) []string {
	fa, fb := map[string]string{}, map[string]string{}
	FlattenJSON("", decodeAny(a), fa)
	FlattenJSON("", decodeAny(b), fb)
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]string{fa, fb} {
		for k := range m {
			if seen[k] {
				continue
			}
			seen[k] = true
			if fa[k] == fb[k] {
				continue
			}
			// A metric or variant added or removed is named once, not
			// by each of its fields.
			if p := elementAdded(k, fa, fb); p != k {
				if !seen[p] {
					seen[p] = true
					out = append(out, p)
				}
				continue
			}
			out = append(out, k)
		}
	}
	sort.Strings(out)
	if out == nil {
		out = []string{}
	}
	return out
}

func decodeAny(b json.RawMessage) any {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	return v
}

// elementAdded returns the shortest list element on path k (FlattenJSON's
// "[name=...]") present on one side only — the element added or removed —
// or k itself when every element on its path is on both sides.
func elementAdded(k string, fa, fb map[string]string) string {
	for i := 0; i < len(k); i++ {
		if k[i] != ']' {
			continue
		}
		p := k[:i+1]
		if hasPrefixKey(fa, p) != hasPrefixKey(fb, p) {
			return p
		}
	}
	return k
}

// hasPrefixKey reports whether some flattened path is p or lies under it.
func hasPrefixKey(m map[string]string, p string) bool {
	for k := range m {
		if k == p || strings.HasPrefix(k, p+".") || strings.HasPrefix(k, p+"[") {
			return true
		}
	}
	return false
}

// ApplyCriteria fills the decisions' criteria block from tonight's spec
// and the earlier nights (history; nil: read from expDir) and returns
// tonight's criteria and the history used, for the manifest.
func ApplyCriteria(spec *expspec.Spec, date, expDir string, history *CriteriaHistory, dec *Decisions) (json.RawMessage, *CriteriaHistory, error) {
	c, sum, err := criteriaOf(spec)
	if err != nil {
		return nil, nil, err
	}
	if history == nil {
		h := ReadCriteriaHistory(expDir, spec.Experiment, spec.Window.Start, date)
		history = &h
	}
	dec.Criteria = criteriaInfo(date, c, sum, *history)
	return c, history, nil
}
