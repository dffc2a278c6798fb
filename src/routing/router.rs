//! OWNER: routing helper.
