//! The LLMService API: its CRD (golden file, scale subresource, printer columns), the model
//! URI grammar, the code validation, and the same examples on a real API server; the
//! objects it renders (golden files), the controller's scenarios, and the drain hook; the
//! ModelPrewarm resource; the check of a `pvc://` model.

mod bed;
mod controller;
mod crd;
mod drain;
mod examples;
mod layer;
mod prewarm;
mod real_server;
mod render;
mod uri;
mod verify;
