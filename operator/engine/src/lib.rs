//! kubegrid-engine.
