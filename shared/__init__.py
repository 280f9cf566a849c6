"""What the API and the workers share: settings, schemas, the job store, formatters, errors."""
