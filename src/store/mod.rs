//! sled storage behind small typed functions (foundation, in progress).
