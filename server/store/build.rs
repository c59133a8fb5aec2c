//! Rebuild the store when a migration is added or edited: `sqlx::migrate!` embeds the migrations at compile time,
//! and a stable compiler cannot tell it that the folder changed.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
