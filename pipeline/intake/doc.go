// Package intake finds a spec's input files (globs and folders, partitions
// after --date left out), checks each is a regular local file, hashes it
// once, records its identity (size, mtime, ctime, device, inode) to recheck
// after the SQL, and checks its schema against the traces and events
// contracts under the spec's column mapping.
package intake
