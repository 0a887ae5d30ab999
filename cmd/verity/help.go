package main

import (
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"
)

// commandDoc is one command's help: `verity CMD -h` prints it with the
// command's flags and exits 0.
type commandDoc struct {
	synopsis []string    // usage lines, after "verity "
	summary  string      // what the command does
	args     [][2]string // positional arguments: name, meaning
	subs     [][2]string // subcommands of a group: synopsis, meaning
	notes    string      // exit codes and the like
	examples []string
}

// docs holds the help of every command, keyed by its flag set's name.
var docs = map[string]commandDoc{
	"run": {
		synopsis: []string{"run [flags] SPEC|DIR...", "run --shard I/K --partials DIR [flags] SPEC|DIR..."},
		summary: "Analyse each spec and write its results to OUT/<experiment>/<date>/ (report.html, results.csv, results.parquet, decisions.json, quality.json, manifest.json). Specs that share their inputs are analysed in one pass over the data. " +
			"With --shard I/K, analyse only the units of shard I of K (bucket = first 8 bytes of MD5(salt ‖ unit_id) mod buckets, shard = bucket mod K; the spec's sharding: section, default salt verity-units-v1 and 1024 buckets) and write that shard's exact partial result to DIR/<name>/<date>/shard-I-of-K.json instead of releasing anything; verity merge releases. Specs must pin the unit-keyed templates.",
		args: [][2]string{
			{"SPEC|DIR", "a spec file, or a folder: each of its *.yaml and *.yml specs, in name order (one or more)"},
		},
		notes: exitNotes,
		examples: []string{
			"verity run --out runs fixtures/specs/checkout-button.yaml",
			"verity run --date 2026-11-20 --out /srv/results --log json specs/",
			"verity run --dry-run specs/",
			"verity run --incremental --state-dir /var/lib/verity --date 2026-11-20 --out /srv/results specs/",
			"verity run --shard 2/8 --partials /shared/partials --date 2026-11-20 specs/",
		},
	},
	"merge": {
		synopsis: []string{"merge --shards K --partials DIR [flags] SPEC|DIR..."},
		summary:  "Combine the K shards' partial results of each spec (verity run --shard) into its release, byte for byte what one verity run over all the units writes: gates, statistics, decisions, differential-privacy noise drawn once on the merged exact values and charged once, report and manifest. A missing, duplicated, stale (other inputs, templates, spec, date or build), altered or forged partial is refused, naming the shard, and nothing is released (exit 66 when a shard is missing, 78 otherwise).",
		args: [][2]string{
			{"SPEC|DIR", "the same specs the shards ran (one or more)"},
		},
		notes: exitNotes,
		examples: []string{
			"verity merge --shards 8 --partials /shared/partials --date 2026-11-20 --out /srv/results specs/",
		},
	},
	"validate": {
		synopsis: []string{"validate [flags] SPEC|DIR..."},
		summary:  "Check specs, noise keys, input files and their schemas (and a private spec's data source and ledger) without running a template; writes nothing.",
		args: [][2]string{
			{"SPEC|DIR", "a spec file, or a folder: each of its *.yaml and *.yml specs (one or more)"},
		},
		notes: exitNotes,
		examples: []string{
			"verity validate specs/",
			"verity validate --data --date 2026-11-20 specs/checkout-button.yaml",
		},
	},
	"replay": {
		synopsis: []string{
			"replay [--pin NAME=vN]... [--inputs-dir DIR] [--out DIR] [flags] MANIFEST|RUN_DIR",
			"replay --against SNAPSHOT.csv [--tol COLUMN=abs:X|rel:X|exact]... MANIFEST|RUN_DIR",
			"replay --export-snapshot FILE|- [--columns C,...] MANIFEST|RUN_DIR",
		},
		summary: "Rerun a past run from its manifest and compare every output byte for byte; or compare its numbers with a dashboard snapshot; or export them in the snapshot layout. Exit 70 when anything differs.",
		args: [][2]string{
			{"MANIFEST|RUN_DIR", "a run's manifest.json, or its run folder OUT/<experiment>/<date> (not the experiment folder above it)"},
		},
		notes: exitNotes,
		examples: []string{
			"verity replay runs/checkout-button/2026-11-19",
			"verity replay --pin unit_metrics=v3 runs/checkout-button/2026-11-19/manifest.json",
			"verity replay --against dashboard.csv --tol '*=rel:1e-6' runs/checkout-button/2026-11-19",
			"verity replay --export-snapshot - runs/checkout-button/2026-11-19 > snapshot.csv",
		},
	},
	"gen": {
		synopsis: []string{"gen --out DIR [--config FILE] [generator flags]"},
		summary: "Write deterministic synthetic traces and metric events with planted effects and injectable faults, and truth.json (the planted truth). Precedence: flag > --config file > default. " +
			"Without --effect, the default effects follow the experiments: the effects of the i-th default experiment (checkout-button, onboarding-flow) are planted on the i-th experiment given, variant for variant (non-control variants in order); --effect none plants none.",
		notes: exitNotes,
		examples: []string{
			"verity gen --out data --units 5000 --seed 7",
			"verity gen --out data --experiment 'signup:control=0.5,treatment=0.5'",
			"verity gen --out data --config golden/replay-check/gen.json --fault-srm 0.1",
		},
	},
	"check-truth": {
		synopsis: []string{"check-truth --truth DATA/truth.json [--aa-tail P] [-v] RUN..."},
		summary:  "Check runs of generated data against the truth `verity gen` planted: cell sizes, every planted effect inside its interval, A/A comparisons not flagged beyond the binomial allowance. Exit 70 with a table of the failures.",
		args: [][2]string{
			{"RUN", "a run folder OUT/<experiment>/<date> or its manifest.json (one or more)"},
		},
		notes: exitNotes,
		examples: []string{
			"verity check-truth --truth data/truth.json runs/checkout/2026-11-19",
		},
	},
	"plan": {
		synopsis: []string{"plan --pre-start YYYY-MM-DD --pre-end YYYY-MM-DD [--json] [flags] SPEC"},
		summary: "Estimate each goal's sample size and duration from a pre-period of real traffic: the spec's pinned templates run over [--pre-start, --pre-end) exactly as a run would (nothing is written); every assigned unit, all variants pooled, gives each metric's baseline mean and per-unit variance (delta method for ratios; the CUPED correlation when the spec sets CUPED) and the units per day; stats.PlanSampleSize then plans each goal × treatment in the spec's design (fixed horizon, or the always-valid sequence), at the metric's α (uncorrected), power and alternative, for a relative effect of max_relative_mde (plus a superiority margin). " +
			"A private spec is refused: its exact baselines would be a release the ledger never charged.",
		args: [][2]string{
			{"SPEC", "one spec file"},
		},
		notes: exitNotes,
		examples: []string{
			"verity plan --pre-start 2026-11-01 --pre-end 2026-11-15 specs/checkout-button.yaml",
			"verity plan --pre-start 2026-11-01 --pre-end 2026-11-15 --json specs/checkout-button.yaml",
		},
	},
	"queries": {
		synopsis: []string{"queries verify|list|lock [--dir DIR]"},
		summary:  "Check, list or release the versioned SQL templates.",
		subs: [][2]string{
			{"queries verify [--dir DIR]", "check the templates against queries.lock"},
			{"queries list [--dir DIR]", "list the released templates and their SHA-256"},
			{"queries lock --dir DIR", "release new template versions into queries.lock (refuses if a released one changed)"},
		},
		examples: []string{
			"verity queries verify",
			"verity queries lock --dir queries",
			"verity queries verify -h",
		},
	},
	"queries verify": {
		synopsis: []string{"queries verify [--dir DIR]"},
		summary:  "Check that every released template matches queries.lock (exit 78 naming the template otherwise).",
		examples: []string{"verity queries verify", "verity queries verify --dir queries"},
	},
	"queries list": {
		synopsis: []string{"queries list [--dir DIR]"},
		summary:  "List the released templates (path and SHA-256).",
		examples: []string{"verity queries list"},
	},
	"queries lock": {
		synopsis: []string{"queries lock --dir DIR"},
		summary:  "Release new template versions into DIR/queries.lock; refuses if a released template changed.",
		examples: []string{"verity queries lock --dir queries"},
	},
	"metrics": {
		synopsis: []string{"metrics lock --dir LIBRARY"},
		summary:  "Release a metric library's new definitions (<name>/v<N>.yaml) into LIBRARY/metrics.lock; refuses if a released definition changed.",
		subs: [][2]string{
			{"metrics lock --dir LIBRARY", "release new definition files; a changed released one is refused (write a new version)"},
		},
		examples: []string{"verity metrics lock --dir metrics"},
	},
	"metrics lock": {
		synopsis: []string{"metrics lock --dir LIBRARY"},
		summary:  "Release a metric library's new definitions into LIBRARY/metrics.lock; refuses if a released definition changed.",
		examples: []string{"verity metrics lock --dir metrics"},
	},
	"ledger": {
		synopsis: []string{"ledger init|show [flags]"},
		summary:  "Manage the host's privacy ledgers: one per data source, in the state folder.",
		subs: [][2]string{
			{"ledger init --state-dir DIR --source NAME --root DATA_DIR --epsilon E --delta D [flags]", "register a data source and create its ledger (the only way a ledger is created)"},
			{"ledger show --state-dir DIR", "print every source's budget, what was spent and what remains"},
		},
		examples: []string{
			"verity ledger init --state-dir /var/lib/verity --source events --root /data/events --epsilon 8 --delta 1e-6",
			"verity ledger show --state-dir /var/lib/verity",
		},
	},
	"ledger init": {
		synopsis: []string{"ledger init --state-dir DIR --source NAME --root DATA_DIR --epsilon E --delta D [--scope source|experiment] [--key-env VAR|--key-file F]... [--import OLD_LEDGER]..."},
		summary:  "Register a data source and create its empty privacy ledger. A private run never creates one, so a lost ledger refuses the release instead of starting over.",
		notes:    exitNotes,
		examples: []string{
			"verity ledger init --state-dir /var/lib/verity --source events --root /data/events --epsilon 8 --delta 1e-6 --key-env VERITY_NOISE_KEY",
		},
	},
	"ledger show": {
		synopsis: []string{"ledger show --state-dir DIR"},
		summary:  "Print every registered source's budget and each scope's spending: exact rationals in the ledger's unit (ρ for zCDP, ε for pure DP), their decimals, and ε spent and remaining (at the ledger's δ).",
		notes:    exitNotes,
		examples: []string{"verity ledger show --state-dir /var/lib/verity"},
	},
	"version": {
		synopsis: []string{"version"},
		summary:  "Print the build, Go and DuckDB versions.",
		examples: []string{"verity version"},
	},
}

const exitNotes = "exit codes: 0 ok; 1 transient, retry; 65 data error or blocking gate; 66 an input is missing; 70 mismatch; 73 an output cannot be created; 78 configuration or usage error (docs/PRODUCT.md)."

// helpRequested is returned by parseFlags for -h/--help: run prints its
// text on stdout and exits 0.
type helpRequested struct{ text string }

func (h *helpRequested) Error() string { return "help requested" }

// helpFor renders a command's help: usage, what it does, its arguments,
// its flags with their defaults, and examples.
func helpFor(name string, fs *flag.FlagSet) string {
	d, ok := docs[name]
	if !ok {
		d = commandDoc{synopsis: []string{name + " [flags]"}}
	}
	var b strings.Builder
	for i, s := range d.synopsis {
		if i == 0 {
			b.WriteString("usage: verity " + s + "\n")
		} else {
			b.WriteString("       verity " + s + "\n")
		}
	}
	if d.summary != "" {
		b.WriteString("\n" + wrap(d.summary, 0) + "\n")
	}
	if len(d.args) > 0 {
		b.WriteString("\narguments:\n")
		for _, a := range d.args {
			fmt.Fprintf(&b, "  %s\n%s\n", a[0], wrap(a[1], 8))
		}
	}
	if len(d.subs) > 0 {
		b.WriteString("\ncommands (verity " + name + " COMMAND -h for each one's flags):\n")
		for _, s := range d.subs {
			fmt.Fprintf(&b, "  verity %s\n%s\n", s[0], wrap(s[1], 8))
		}
	}
	if fs != nil {
		var flags []*flag.Flag
		fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
		if len(flags) > 0 {
			b.WriteString("\nflags:\n")
			sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
			for _, f := range flags {
				b.WriteString(flagLine(f))
			}
		}
	}
	if d.notes != "" {
		b.WriteString("\n" + wrap(d.notes, 0) + "\n")
	}
	if len(d.examples) > 0 {
		b.WriteString("\nexamples:\n")
		for _, e := range d.examples {
			b.WriteString("  " + e + "\n")
		}
	}
	return b.String()
}

// flagLine is one flag's help: --name VALUE, its meaning and its default.
func flagLine(f *flag.Flag) string {
	arg, usage := flag.UnquoteUsage(f)
	line := "  --" + f.Name
	if arg != "" {
		line += " " + arg
	}
	if def := flagDefault(f); def != "" {
		usage += " (default " + def + ")"
	}
	return line + "\n" + wrap(usage, 8) + "\n"
}

// flagDefault is a flag's default as the command line would spell it, or
// "" when the default is the zero value (false, 0, empty).
func flagDefault(f *flag.Flag) string {
	v := f.DefValue
	switch v {
	case "", "0", "false", "[]", "0s":
		return ""
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if _, isString := g.Get().(string); isString {
			return fmt.Sprintf("%q", v)
		}
	}
	return v
}

// wrap folds text at about 100 columns, indenting every line by indent.
func wrap(text string, indent int) string {
	pad := strings.Repeat(" ", indent)
	var lines []string
	line := pad
	for _, w := range strings.Fields(text) {
		if len(line) > indent && len(line)+1+len(w) > 100 {
			lines = append(lines, line)
			line = pad
		}
		if len(line) > indent {
			line += " "
		}
		line += w
	}
	if len(line) > indent {
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

// isHelpArg reports whether a group's first argument asks for help.
func isHelpArg(s string) bool {
	switch s {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// isHelp reports whether err asks for help.
func isHelp(err error) (*helpRequested, bool) {
	var h *helpRequested
	ok := errors.As(err, &h)
	return h, ok
}
