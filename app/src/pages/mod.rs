//! One module per screen.

pub mod account;
pub mod admin;
pub mod audit;
pub mod coming_soon;
pub mod home;
pub mod invite;
pub mod login;
pub mod members;
pub mod not_found;
pub mod team;
pub mod teams;
