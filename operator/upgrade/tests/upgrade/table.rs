//! The version-pair table.
