package kubernetes

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// loadShardedJobs decodes sharded-jobs.yaml's two Jobs strictly.
func loadShardedJobs(t *testing.T) (shards, merge *batchv1.Job) {
	t.Helper()
	b, err := os.ReadFile("sharded-jobs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := bytes.Split(b, []byte("\n---\n"))
	if len(docs) != 2 {
		t.Fatalf("want two documents (shards, merge), got %d", len(docs))
	}
	var jobs [2]batchv1.Job
	for i, d := range docs {
		if err := decodeStrict(d, &jobs[i]); err != nil {
			t.Fatalf("document %d: %v", i+1, err)
		}
		if jobs[i].Kind != "Job" || jobs[i].APIVersion != "batch/v1" {
			t.Fatalf("document %d: want a batch/v1 Job, got %s %s", i+1, jobs[i].APIVersion, jobs[i].Kind)
		}
	}
	return &jobs[0], &jobs[1]
}

func jobContainer(t *testing.T, j *batchv1.Job) corev1.Container {
	t.Helper()
	cs := j.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "verity" {
		t.Fatalf("%s: want one container named verity", j.Name)
	}
	return cs[0]
}

// TestShardedJobsShape: the shard Job is Indexed with completions =
// parallelism = VERITY_SHARDS (the merge's too), a failed index fails the
// Job, and both act on verity's exit codes as the CronJob does.
func TestShardedJobsShape(t *testing.T) {
	shards, merge := loadShardedJobs(t)
	s := shards.Spec
	if s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion {
		t.Fatal("verity-shards: want completionMode Indexed")
	}
	if s.Completions == nil || s.Parallelism == nil || *s.Completions != *s.Parallelism {
		t.Fatal("verity-shards: want completions = parallelism")
	}
	if s.MaxFailedIndexes == nil || *s.MaxFailedIndexes != 0 {
		t.Error("verity-shards: a failed shard must fail the Job (maxFailedIndexes: 0)")
	}
	k := strconv.Itoa(int(*s.Completions))
	for _, j := range []*batchv1.Job{shards, merge} {
		if got := literalEnv(jobContainer(t, j))["VERITY_SHARDS"]; got != k {
			t.Errorf("%s: VERITY_SHARDS %q, want the completions %s", j.Name, got, k)
		}
		if j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("%s: podFailurePolicy needs restartPolicy Never", j.Name)
		}
		for code, want := range map[int32]batchv1.PodFailurePolicyAction{65: "FailJob", 78: "FailJob", 70: "FailJob", 73: "FailJob", 1: "Count", 66: "Count"} {
			if a, _ := action(j.Spec, code); a != want {
				t.Errorf("%s: exit %d would %s, want %s", j.Name, code, a, want)
			}
		}
	}
}

// TestShardedJobsOnFixtures runs each shard pod's command (with its
// JOB_COMPLETION_INDEX) and then the merge pod's on the fixtures, and
// compares the release with a single verity run, byte for byte.
func TestShardedJobsOnFixtures(t *testing.T) {
	shards, merge := loadShardedJobs(t)
	root := t.TempDir()
	for _, d := range []string{"specs", "partials", "results", "state", "scratch", "single"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyTree(t, filepath.Join(repoRoot(), "fixtures", "data"), filepath.Join(root, "data"))
	// The exact unit-keyed spec of the shard tests, its inputs under /data.
	b, err := os.ReadFile(filepath.Join(repoRoot(), "golden", "testdata", "shard-exact.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	spec := strings.ReplaceAll(string(b), "../../fixtures/data/", "../data/")
	if err := os.WriteFile(filepath.Join(root, "specs", "sharded.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	const k = 3
	kEnv := "VERITY_SHARDS=" + strconv.Itoa(k) // the test's K, not the manifest's
	for i := 0; i < k; i++ {
		code, out := runContainer(t, jobContainer(t, shards), root, kEnv, fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i))
		if code != 0 {
			t.Fatalf("shard %d/%d: exit %d:\n%s", i, k, code, out)
		}
	}
	if code, out := runContainer(t, jobContainer(t, merge), root, kEnv); code != 0 {
		t.Fatalf("merge: exit %d:\n%s", code, out)
	}
	cmd := exec.Command(verityBin(t), "run", "--log", "none", "--date", "2026-11-19", "--out", filepath.Join(root, "single"), filepath.Join(root, "specs", "sharded.yaml"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("single run: %v\n%s", err, out)
	}
	for _, f := range []string{"results.csv", "results.parquet", "decisions.json", "quality.json", "report.html"} {
		a, err1 := os.ReadFile(filepath.Join(root, "single", "checkout-button-sharded", "2026-11-19", f))
		b, err2 := os.ReadFile(filepath.Join(root, "results", "checkout-button-sharded", "2026-11-19", f))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: merged release differs from the single run (%v, %v)", f, err1, err2)
		}
	}
	// A missing shard: the merge exits 66 (retried: the shard may still land).
	os.Remove(filepath.Join(root, "partials", "checkout-button-sharded", "2026-11-19", "shard-1-of-3.json"))
	os.RemoveAll(filepath.Join(root, "results", "checkout-button-sharded"))
	if code, out := runContainer(t, jobContainer(t, merge), root, kEnv); code != 66 {
		t.Fatalf("merge without shard 1: exit %d, want 66:\n%s", code, out)
	}
}
