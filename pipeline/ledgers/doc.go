// Package ledgers is the host's privacy custody: the registry of data
// sources (a file belongs to the source whose root holds it), each source's
// budget ledger (charged under a file lock before anything is released), the
// restricted area where exact private records are kept, and the test key's
// fingerprint. Its files are restricted material under the privacy rules.
package ledgers
