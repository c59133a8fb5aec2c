//! The fleet: which engine replicas run where, and keeping them so.
//!
//! `rules/` holds the decisions, in plain Rust without IO (placement on GPUs, autoscaling, a replica's lifecycle),
//! each tested with tables of cases; the controller and its drivers around them do the IO.

pub mod rules;
