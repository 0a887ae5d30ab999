package pipeline

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
)

// ManifestFormat identifies the manifest layout.
const ManifestFormat = "verity.manifest/1"

// Manifest is manifest.json, written last as the commit marker of a run's
// output folder. Everything outside Build and Volatile is byte-identical for
// identical inputs, spec, templates and binary, whatever the thread count;
// Build is identical between runs of the same binary; Volatile differs on
// every run.
type Manifest struct {
	Format      string `json:"format"`
	Experiment  string `json:"experiment"`
	NominalDate string `json:"nominal_date"`
	// DateFromFlag is true when the nominal date was given (--date): the
	// window was cut at it and later partitions were not read. False means
	// the date is the window's last day and every matching file was read.
	DateFromFlag bool             `json:"date_from_flag"`
	Spec         json.RawMessage  `json:"spec"`
	SpecSHA256   string           `json:"spec_sha256"`
	Templates    []TemplateRecord `json:"templates"`
	Inputs       []InputFile      `json:"inputs"`
	InputDigest  string           `json:"input_digest"`
	DuckDB       DuckDBInfo       `json:"duckdb"`
	Statistics   StatisticsInfo   `json:"statistics"`
	Privacy      PrivacyInfo      `json:"privacy"`
	Checks       []Check          `json:"checks"`
	// Baseline is the previous night's run the volume check used, if any.
	Baseline *Baseline    `json:"previous_night,omitempty"`
	Outputs  []OutputFile `json:"outputs"`
	Build    *BuildInfo   `json:"build,omitempty"`
	Volatile *Volatile    `json:"volatile,omitempty"`
}

// DuckDBInfo records the engine version and the settings that can change a
// result. Thread count, memory limit and spill directory cannot, and are in
// Volatile.Execution.
type DuckDBInfo struct {
	Version  string    `json:"version"`
	Settings []Setting `json:"settings"`
}

// OutputFile is one output's name, size and SHA-256.
type OutputFile struct {
	Name   string `json:"name"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

// BuildInfo identifies the binary that produced a run.
type BuildInfo struct {
	Module    string `json:"module"`
	Version   string `json:"version"`
	Revision  string `json:"vcs_revision"`
	Modified  bool   `json:"vcs_modified"`
	GoVersion string `json:"go_version"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
}

// Volatile holds what changes on every run.
type Volatile struct {
	RunID      string    `json:"run_id"`
	ParentRun  string    `json:"parent_run,omitempty"`
	StartedAt  string    `json:"started_at,omitempty"`  // private runs: restricted record only
	FinishedAt string    `json:"finished_at,omitempty"` // private runs: restricted record only
	Phases     []Phase   `json:"phases,omitempty"`      // private runs: restricted record only
	Execution  []Setting `json:"execution_settings"`
	SpecFile   string    `json:"spec_file"`
	Scan       *Scan     `json:"scan,omitempty"`
	// Ledger is the privacy ledger after this run (private runs only).
	Ledger *LedgerState `json:"privacy_ledger,omitempty"`
}

// Phase is the wall time of one phase of the run.
type Phase struct {
	Name   string  `json:"name"`
	Millis float64 `json:"ms"`
}

// Stable returns the manifest without Build and Volatile: the part that a
// golden file pins and that identical runs reproduce byte for byte.
func (m Manifest) Stable() Manifest {
	m.Build = nil
	m.Volatile = nil
	return m
}

// CurrentBuild reads the running binary's build information.
func CurrentBuild() BuildInfo {
	b := BuildInfo{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Module = info.Main.Path
	if info.Main.Version != "" {
		b.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}
