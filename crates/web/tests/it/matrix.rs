//! The access matrix.
