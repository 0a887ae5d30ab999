// Package analysis turns cells (exact, or noisy from privatize) into
// results: exact moments (big.Rat), the stats calls (CUPED, Welch, delta
// method, Fieller, SRM, corrections, sequential, MDE), quality gates,
// missing-event checks, the horizon and days still needed, the success
// criteria locked at launch, and the decision. Its rows and checks are what
// publish writes.
package analysis
