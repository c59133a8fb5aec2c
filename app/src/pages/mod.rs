//! One module per screen.

pub mod account;
pub mod admin;
pub mod admin_fleet;
pub mod admin_models;
pub mod admin_plans;
pub mod alerts;
pub mod approvals;
pub mod audit;
pub mod catalog;
pub mod home;
pub mod invite;
pub mod login;
pub mod members;
pub mod model;
pub mod not_found;
pub mod playground;
pub mod subscription;
pub mod subscriptions;
pub mod team;
pub mod teams;
pub mod tokens;
pub mod usage;
