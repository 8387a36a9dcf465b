//! The callback-center server: settings, telemetry, and the one place that
//! turns settings into concrete backends and starts everything.

mod metrics;
pub mod settings;
mod spans;
pub mod startup;
pub mod telemetry;

pub use settings::Settings;
pub use startup::Application;
