//! The LLMService API: its CRD (golden file, scale subresource, printer columns), the model
//! URI grammar, the code validation, and the same examples on a real API server.

mod crd;
mod examples;
mod real_server;
mod uri;
