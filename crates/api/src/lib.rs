//! qa-sentinel HTTP API: router, auth, middleware, metrics, health, OpenAPI.
