"""Landing, dashboards, help, language choice and health check."""
