//! kubegrid-api.
