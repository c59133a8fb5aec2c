//! Autoscaling (being written).
