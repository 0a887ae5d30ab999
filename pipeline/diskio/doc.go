// Package diskio is how Verity touches the disk: inputs are opened only if
// they are regular files (a FIFO, device or directory is refused, never
// read), reads are bounded, and outputs are written synced and committed
// atomically — a run's folder is staged, its manifest written last, and
// renamed into place under a folder lock, so a reader never sees a
// half-written run. It knows nothing of specs or statistics.
package diskio
