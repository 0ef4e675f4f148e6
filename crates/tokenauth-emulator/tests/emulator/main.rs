//! Integration tests: the emulator driven by a plain reqwest client.

mod binary;
mod bro;
mod control;
mod faults;
mod helpers;
mod lifecycle;
mod reob;
mod shapes;
mod tls;
mod twoba;
