//! colorapp's colorgateway: asks the colorteller for a color and answers with it and a histogram of recent colors.
