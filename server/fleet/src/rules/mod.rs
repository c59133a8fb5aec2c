//! The fleet's decisions, without IO: given what is known now, what should happen next.

pub mod autoscale;
pub mod lifecycle;
pub mod placement;
