//! A TCP proxy for fault tests: forwards connections to a real server and can cut every
//! connection on demand, so a test can drop restage's connection mid-stream without touching
//! the shared server.
