//! The request → approval → grant workflow (application service over domain + store + adapters).
