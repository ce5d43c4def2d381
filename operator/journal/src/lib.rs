//! kubegrid-journal.
