//! (placeholder: filled by the card-os foundation work)
