//! kubegrid-plan.
