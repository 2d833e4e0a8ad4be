//! Property tests of the whole path `check` runs, from documents through lowering to the
//! compiled table: they live on the table's side so that the configuration reader never
//! imports the table (data flows config -> table).

mod cloudformation;
mod config;
