// Package kubernetes checks the CronJob example (cronjob.yaml): it decodes
// strictly into the k8s.io/api types, acts on verity's exit codes as
// deploy/README.md says, runs as the Dockerfile's non-root user with a
// read-only root, and its container command, run on the committed fixtures
// with the real binary, gives the exit codes the policy is written for.
//
// It is a module of its own so that k8s.io/api stays out of verity's
// go.mod. Run by make deploy-check (VERITY_BIN names the binary to run;
// without it the test builds one).
package kubernetes

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// nightlySpecs are the fixture specs the CronJob's folder holds in the run
// test. (Once fixture specs have distinct names and `verity run
// fixtures/specs/` passes, this becomes every spec of fixtures/specs.)
var nightlySpecs = []string{"checkout-button.yaml", "onboarding-flow.yaml"}

const manifest = "cronjob.yaml"

func repoRoot() string { return filepath.Join("..", "..") }

// decodeStrict decodes YAML as the API server decodes a request: a
// duplicate key, an unknown field or a field spelt in another case is an
// error (encoding/json alone would match "readOnlyRootFileSystem").
func decodeStrict(b []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func loadCronJob(t *testing.T) *batchv1.CronJob {
	t.Helper()
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	var cj batchv1.CronJob
	if err := decodeStrict(b, &cj); err != nil {
		t.Fatalf("%s does not decode strictly into batch/v1 CronJob: %v", manifest, err)
	}
	return &cj
}

// TestCronJobDecodesStrictly: the manifest is a batch/v1 CronJob with no
// unknown or duplicated field, and a misspelt field would be caught.
func TestCronJobDecodesStrictly(t *testing.T) {
	cj := loadCronJob(t)
	if cj.APIVersion != "batch/v1" || cj.Kind != "CronJob" {
		t.Errorf("apiVersion/kind = %s/%s, want batch/v1 CronJob", cj.APIVersion, cj.Kind)
	}
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, typo := range [][2]string{
		{"backoffLimit:", "backofLimit:"},
		{"readOnlyRootFilesystem:", "readOnlyRootFileSystem:"},
		{"      podFailurePolicy:", "      backoffLimit: 2\n      podFailurePolicy:"}, // a duplicate key
	} {
		bad := bytes.Replace(b, []byte(typo[0]), []byte(typo[1]), 1)
		if bytes.Equal(bad, b) {
			t.Fatalf("%q not found in %s", typo[0], manifest)
		}
		var cj batchv1.CronJob
		if err := decodeStrict(bad, &cj); err == nil {
			t.Errorf("strict decoding accepted %q", typo[1])
		}
	}
	if !regexp.MustCompile(`^(\S+ ){4}\S+$`).MatchString(cj.Spec.Schedule) {
		t.Errorf("schedule %q is not a five-field cron expression", cj.Spec.Schedule)
	}
	if cj.Spec.TimeZone == nil || *cj.Spec.TimeZone != "Etc/UTC" {
		t.Errorf("timeZone should be Etc/UTC: the command's 'yesterday' is a UTC date")
	}
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy = %q, want Forbid", cj.Spec.ConcurrencyPolicy)
	}
}

// action is what the Job controller does with a pod whose container
// "verity" exited with code: the first matching podFailurePolicy rule's
// action, else Count (retried until backoffLimit), as Kubernetes
// documents it.
func action(job batchv1.JobSpec, code int32) (batchv1.PodFailurePolicyAction, int) {
	if job.PodFailurePolicy == nil {
		return batchv1.PodFailurePolicyActionCount, -1
	}
	for i, r := range job.PodFailurePolicy.Rules {
		ec := r.OnExitCodes
		if ec == nil {
			continue
		}
		if ec.ContainerName != nil && *ec.ContainerName != "verity" {
			continue
		}
		in := slices.Contains(ec.Values, code)
		if (ec.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && in) ||
			(ec.Operator == batchv1.PodFailurePolicyOnExitCodesOpNotIn && !in && code != 0) {
			return r.Action, i
		}
	}
	return batchv1.PodFailurePolicyActionCount, -1
}

// policy is deploy/README.md's table: exit code -> what the Job does.
var policy = map[int32]batchv1.PodFailurePolicyAction{
	1:   batchv1.PodFailurePolicyActionCount,   // transient: retry
	75:  batchv1.PodFailurePolicyActionCount,   // temporary failure: retry
	66:  batchv1.PodFailurePolicyActionCount,   // input not landed yet: retry
	65:  batchv1.PodFailurePolicyActionFailJob, // blocked by a gate: alert, no retry
	70:  batchv1.PodFailurePolicyActionFailJob, // mismatch
	73:  batchv1.PodFailurePolicyActionFailJob, // cannot create the output
	78:  batchv1.PodFailurePolicyActionFailJob, // configuration or integrity
	137: batchv1.PodFailurePolicyActionCount,   // killed (out of memory): retry
}

func TestCronJobActsOnExitCodes(t *testing.T) {
	job := loadCronJob(t).Spec.JobTemplate.Spec
	if job.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy = %q: podFailurePolicy needs Never", job.Template.Spec.RestartPolicy)
	}
	if job.BackoffLimit == nil || *job.BackoffLimit < 1 {
		t.Errorf("backoffLimit must allow retries of transient failures")
	}
	for code, want := range policy {
		if got, _ := action(job, code); got != want {
			t.Errorf("exit %d: the Job would %s, want %s", code, got, want)
		}
	}
	// The blocked rule is its own, so an alert can tell "blocked" from
	// "a person must fix the configuration".
	_, r65 := action(job, 65)
	_, r78 := action(job, 78)
	if r65 == r78 {
		t.Errorf("exit 65 and 78 match the same rule %d; keep blocked apart", r65)
	}
	ignored := false
	for _, r := range job.PodFailurePolicy.Rules {
		for _, c := range r.OnPodConditions {
			ignored = ignored || (c.Type == corev1.DisruptionTarget && r.Action == batchv1.PodFailurePolicyActionIgnore)
		}
	}
	if !ignored {
		t.Errorf("evicted or preempted pods should not count as failures (rule on DisruptionTarget)")
	}
}

// dockerUser reads USER uid:gid from the Dockerfile.
func dockerUser(t *testing.T) (uid, gid int64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^USER (\d+):(\d+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("Dockerfile has no USER uid:gid line")
	}
	uid, _ = strconv.ParseInt(string(m[1]), 10, 64)
	gid, _ = strconv.ParseInt(string(m[2]), 10, 64)
	return uid, gid
}

func container(t *testing.T, cj *batchv1.CronJob) corev1.Container {
	t.Helper()
	cs := cj.Spec.JobTemplate.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "verity" {
		t.Fatalf("want one container named verity (the podFailurePolicy rules name it), got %d", len(cs))
	}
	return cs[0]
}

func TestCronJobRunsAsTheImageUser(t *testing.T) {
	cj := loadCronJob(t)
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	c := container(t, cj)
	uid, gid := dockerUser(t)
	sc := pod.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("runAsNonRoot must be true")
	}
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != uid || sc.RunAsGroup == nil || *sc.RunAsGroup != gid {
		t.Errorf("runAsUser/runAsGroup must be the Dockerfile's USER %d:%d", uid, gid)
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem must be true (deploy/check runs the image so)")
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		if _, ok := vols[m.Name]; !ok {
			t.Errorf("volumeMount %s names no volume", m.Name)
		}
		mounts[m.MountPath] = m
	}
	// Every path the command writes is a writable volume; the inputs are
	// read-only; /tmp is writable (replay stages its rerun there).
	env := literalEnv(c)
	for _, k := range []string{"VERITY_OUT", "VERITY_STATE_DIR", "VERITY_TEMP_DIR"} {
		if m, ok := mounts[env[k]]; !ok || m.ReadOnly {
			t.Errorf("%s=%q is not a writable volume mount", k, env[k])
		}
	}
	if m, ok := mounts["/tmp"]; !ok || m.ReadOnly {
		t.Error("/tmp must be a writable volume under a read-only root")
	}
	for _, p := range []string{env["VERITY_SPECS"], "/data"} {
		if m, ok := mounts[p]; !ok || !m.ReadOnly {
			t.Errorf("%s should be mounted read-only", p)
		}
	}
	if filepath.Dir(env["VERITY_SPECS"]) != "/" || !strings.HasPrefix(filepath.Join(env["VERITY_SPECS"], "..", "data"), "/data") {
		t.Errorf("specs at %s and data at /data must be siblings, so a spec's ../data inputs resolve", env["VERITY_SPECS"])
	}
}

func literalEnv(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	return env
}

// verityBin is the binary to run: VERITY_BIN, or one built from the
// repository.
func verityBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("VERITY_BIN"); b != "" {
		abs, err := filepath.Abs(b)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	out := filepath.Join(t.TempDir(), "verity")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/verity")
	cmd.Dir = repoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building verity (set VERITY_BIN to skip): %v\n%s", err, b)
	}
	return out
}

// copyTree copies a folder of regular files.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// configMapFolder lays out specs as a configMap volume does: the files in a
// timestamped hidden folder, "..data" linking to it, and each name a link
// through "..data".
func configMapFolder(t *testing.T, dir string, specs []string) {
	t.Helper()
	ts := filepath.Join(dir, "..2026_11_20_03_30_00.000000001")
	if err := os.MkdirAll(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		b, err := os.ReadFile(filepath.Join(repoRoot(), "fixtures", "specs", s))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ts, s), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", s), filepath.Join(dir, s)); err != nil {
			t.Fatal(err)
		}
	}
}

// runContainer runs the container's command and args on this machine, with
// its literal environment, every volume's mount path moved under root, and
// verity on PATH. It returns the exit code and the combined output.
func runContainer(t *testing.T, c corev1.Container, root string, extraEnv ...string) (int, string) {
	t.Helper()
	bin := filepath.Join(root, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(verityBin(t), filepath.Join(bin, "verity")); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	remap := func(v string) string {
		for _, m := range c.VolumeMounts {
			if v == m.MountPath || strings.HasPrefix(v, m.MountPath+"/") {
				return filepath.Join(root, v)
			}
		}
		return v
	}
	argv := append(slices.Clone(c.Command), c.Args...)
	for i := range argv {
		if strings.Contains(argv[i], "/specs") || strings.Contains(argv[i], "/results") {
			t.Fatalf("the command names a mount path (%q); use the env vars so one place says where", argv[i])
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + root}
	for k, v := range literalEnv(c) {
		cmd.Env = append(cmd.Env, k+"="+remap(v))
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestCronJobCommandOnFixtures runs the container's command on the
// fixtures: a good night exits 0 with every output committed; a night
// with a blocked spec exits 65, which fails the Job without a retry; a
// night whose data has not landed exits 66, which is retried.
func TestCronJobCommandOnFixtures(t *testing.T) {
	cj := loadCronJob(t)
	c := container(t, cj)
	job := cj.Spec.JobTemplate.Spec
	night := "VERITY_DATE=2026-11-19"

	layout := func(specs []string, data bool) string {
		root := t.TempDir()
		for _, d := range []string{"results", "state", "scratch", "tmp"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Join(root, "specs"), 0o755); err != nil {
			t.Fatal(err)
		}
		configMapFolder(t, filepath.Join(root, "specs"), specs)
		if data {
			copyTree(t, filepath.Join(repoRoot(), "fixtures", "data"), filepath.Join(root, "data"))
		}
		return root
	}

	t.Run("ok", func(t *testing.T) {
		root := layout(nightlySpecs, true)
		code, out := runContainer(t, c, root, night)
		if code != 0 {
			t.Fatalf("exit %d, want 0:\n%s", code, out)
		}
		for _, s := range nightlySpecs {
			exp := strings.TrimSuffix(s, ".yaml")
			for _, f := range []string{"results.csv", "results.parquet", "decisions.json", "quality.json", "report.html", "manifest.json"} {
				if _, err := os.Stat(filepath.Join(root, "results", exp, "2026-11-19", f)); err != nil {
					t.Errorf("output missing: %v", err)
				}
			}
		}
	})
	t.Run("blocked", func(t *testing.T) {
		root := layout(append(slices.Clone(nightlySpecs), "pricing-page-srm.yaml"), true)
		code, out := runContainer(t, c, root, night)
		if code != 65 {
			t.Fatalf("exit %d, want 65 (blocked):\n%s", code, out)
		}
		if a, _ := action(job, int32(code)); a != batchv1.PodFailurePolicyActionFailJob {
			t.Errorf("a blocked night would %s, want FailJob", a)
		}
		// The other specs of the folder still committed their outputs.
		if _, err := os.Stat(filepath.Join(root, "results", "checkout-button", "2026-11-19", "manifest.json")); err != nil {
			t.Errorf("a blocked spec stopped the rest of the folder: %v", err)
		}
		if _, err := os.Stat(filepath.Join(root, "results", "pricing-page-srm", "2026-11-19", "decisions.json")); err != nil {
			t.Errorf("the blocked spec's outputs are missing: %v", err)
		}
	})
	t.Run("data not landed", func(t *testing.T) {
		root := layout(nightlySpecs, false)
		code, out := runContainer(t, c, root, night)
		if code != 66 {
			t.Fatalf("exit %d, want 66 (input missing):\n%s", code, out)
		}
		if a, _ := action(job, int32(code)); a != batchv1.PodFailurePolicyActionCount {
			t.Errorf("a night without data would %s, want Count (retried)", a)
		}
	})
	t.Run("default night is yesterday", func(t *testing.T) {
		// Without VERITY_DATE the command asks for yesterday (UTC): after
		// the fixtures' window ends, each spec is analysed up to its end.
		root := layout(nightlySpecs[:1], true)
		code, out := runContainer(t, c, root)
		if code != 0 {
			t.Fatalf("exit %d without VERITY_DATE:\n%s", code, out)
		}
		if _, err := os.Stat(filepath.Join(root, "results", "checkout-button")); err != nil {
			t.Errorf("no output without VERITY_DATE: %v", err)
		}
	})
}
