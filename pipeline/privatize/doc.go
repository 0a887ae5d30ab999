// Package privatize turns a private spec's exact cells into what may be
// released: the budget allocation, stage-one noisy leaf counts and cohort
// collapsing, keyed discrete noise on every released count and sum, noisy
// gate counts, and the noise scales the statistics need. It loads the noise
// key and refuses templates that are not released. Nothing exact leaves it
// except in the restricted record.
package privatize
