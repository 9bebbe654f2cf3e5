//! colorapp's colorteller: answers every path with its color.

fn main() {}
