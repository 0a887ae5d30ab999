package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/privacy"
)

// ledgerCmd manages the host's privacy ledgers: one per data source, in the
// state folder, created only by `ledger init` (a private run never creates
// one, so a lost ledger refuses the release instead of starting over).
//
//	verity ledger init --state-dir DIR --source NAME --root DATA_DIR --epsilon E --delta D [--scope source|experiment] [--import OLD]...
//	verity ledger show --state-dir DIR
func ledgerCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: ledger needs init or show (verity ledger -h)", expspec.ErrUsage)
	}
	sub := args[0]
	if isHelpArg(sub) {
		return &helpRequested{text: helpFor("ledger", nil)}
	}
	if sub != "init" && sub != "show" {
		return fmt.Errorf("%w: ledger %s: want init or show (verity ledger -h)", expspec.ErrUsage, sub)
	}
	fs := newFlags("ledger " + sub)
	state := fs.String("state-dir", envOr("VERITY_STATE_DIR", ""), "host state folder `DIR` (env VERITY_STATE_DIR)")
	switch sub {
	case "init":
		source := fs.String("source", "", "`NAME` of the data source (lowercase letters, digits, . _ -)")
		root := fs.String("root", "", "folder `DIR` holding every input file of the source (symlinks resolved)")
		eps := fs.Float64("epsilon", 0, "the source's total ε over all its private releases")
		delta := fs.Float64("delta", 0, "the total δ (0: pure ε-DP with the discrete Laplace mechanism)")
		scope := fs.String("scope", string(privacy.ScopeSource), "what the total caps: source (all experiments together) or experiment (each experiment_id)")
		var imports, keyEnvs, keyFiles multiFlag
		fs.Var(&imports, "import", "a version-1 privacy-ledger.json whose entries are carried over (repeatable)")
		fs.Var(&keyEnvs, "key-env", "bind the source to the noise key in this environment variable: releases with any other key are refused (repeatable)")
		fs.Var(&keyFiles, "key-file", "bind the source to the noise key in this file (repeatable)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 0 || *source == "" || *root == "" {
			return fmt.Errorf("%w: ledger init needs --source and --root (and no other arguments)", expspec.ErrUsage)
		}
		if err := checkLocalPaths(fs, "", nil); err != nil {
			return err
		}
		var fingerprints []string
		for _, e := range keyEnvs {
			k, err := privacy.LoadKey(e, "", os.Getenv, nil)
			if err != nil {
				return fmt.Errorf("%w: --key-env %s: %v", expspec.ErrUsage, e, err)
			}
			fingerprints = append(fingerprints, k.Fingerprint())
		}
		for _, f := range keyFiles {
			k, err := privacy.LoadKey("", f, nil, diskio.ReadRegularFile)
			if err != nil {
				return fmt.Errorf("%w: --key-file %s: %v", expspec.ErrUsage, f, err)
			}
			fingerprints = append(fingerprints, k.Fingerprint())
		}
		path, err := ledgers.LedgerInit(*state, *source, *root, privacy.Scope(*scope), privacy.Budget{Epsilon: *eps, Delta: *delta}, imports, fingerprints...)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "ledger %s created for data source %s (%s scope)\n", path, *source, *scope)
		return nil
	case "show":
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 0 {
			return fmt.Errorf("%w: ledger show takes no arguments, got %q", expspec.ErrUsage, fs.Args())
		}
		if err := checkLocalPaths(fs, "", nil); err != nil {
			return err
		}
		return ledgers.LedgerStatus(*state, stdout)
	default:
		return fmt.Errorf("%w: ledger %s: want init or show", expspec.ErrUsage, sub)
	}
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
