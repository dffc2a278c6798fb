//! OWNER: lead. Producer.
