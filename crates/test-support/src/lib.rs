//! qa-sentinel test helpers: servers for test sites, database fixtures, process control.
