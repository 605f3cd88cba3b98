"""How long raw WHOOP objects, webhook events and delivery payloads are kept, per connection."""
