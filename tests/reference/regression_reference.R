# Reference values for the regression tests (run: Rscript tests/reference/regression_reference.R
# from the repository root; output in tests/reference/regression_reference.txt).
# R 4.2.2. Maximum likelihood: glm(binomial) with Wald CI (confint.default) and Wald p,
# which is what Stata `logit` reports. Firth: logistf is not packaged for Debian and
# there is no CRAN access here, so Firth's penalized likelihood is coded below from
# Heinze & Schemper (2002), the algorithm logistf implements: modified-score Newton fit,
# profile penalized-likelihood CI and penalized likelihood-ratio p with the penalty
# taken on the full design (as logistf does), each solved to 1e-10.
options(digits = 10)
dir <- "tests/reference"

pen_loglik <- function(X, y, b) {
  eta <- drop(X %*% b); p <- plogis(eta); w <- p * (1 - p)
  sum(y * eta - log1p(exp(eta))) + 0.5 * determinant(crossprod(X, X * w))$modulus[1]
}
# Maximise the penalized log-likelihood over the coefficients not in `fixed`.
firth_fit <- function(X, y, fixed = integer(0), value = 0) {
  b <- rep(0, ncol(X)); b[fixed] <- value
  free <- setdiff(seq_len(ncol(X)), fixed)
  for (it in 1:500) {
    eta <- drop(X %*% b); p <- plogis(eta); w <- p * (1 - p)
    info <- crossprod(X, X * w)
    xw <- X * sqrt(w)
    h <- rowSums((xw %*% solve(info)) * xw)
    score <- drop(crossprod(X, y - p + h * (0.5 - p)))
    delta <- solve(info[free, free, drop = FALSE], score[free])
    l0 <- pen_loglik(X, y, b); step <- 1
    repeat {
      bn <- b; bn[free] <- b[free] + step * delta
      if (pen_loglik(X, y, bn) >= l0 - 1e-12 || step < 1e-8) break
      step <- step / 2
    }
    b <- bn
    if (max(abs(step * delta)) < 1e-11) break
  }
  list(beta = b, loglik = pen_loglik(X, y, b))
}
firth_report <- function(label, file) {
  d <- read.csv(file.path(dir, file))
  y <- d$y; X <- cbind("(Intercept)" = 1, as.matrix(d[, -1, drop = FALSE]))
  full <- firth_fit(X, y)
  crit <- qchisq(0.95, 1)
  cat("==", label, "(", file, ") Firth: n =", nrow(d), "events =", sum(y), "\n")
  for (j in 2:ncol(X)) {
    bj <- full$beta[j]
    dev <- function(v) 2 * (full$loglik - firth_fit(X, y, j, v)$loglik) - crit
    # widen the bracket step by step (a far value makes the information singular)
    width <- function(s) { w <- 0.5; while (dev(bj + s * w) < 0) w <- w * 1.5; w }
    lo <- uniroot(dev, c(bj - width(-1), bj), tol = 1e-10)$root
    hi <- uniroot(dev, c(bj, bj + width(1)), tol = 1e-10)$root
    chi <- 2 * (full$loglik - firth_fit(X, y, j, 0)$loglik)
    cat(sprintf("%s OR %.10g CI %.10g %.10g p %.10g (b %.10g)\n", colnames(X)[j], exp(bj),
                exp(lo), exp(hi), pchisq(chi, 1, lower.tail = FALSE), bj))
  }
}
d <- read.csv(file.path(dir, "regression_ml.csv"))
m <- glm(y ~ ., family = binomial, data = d)
cat("== regression_ml.csv glm(binomial): n =", nrow(d), "events =", sum(d$y), "\n")
print(cbind(OR = exp(coef(m)), exp(confint.default(m)), p = summary(m)$coefficients[, 4]))
firth_report("quasi-complete separation", "regression_quasi.csv")
firth_report("complete separation", "regression_complete.csv")
firth_report("few events per covariate", "regression_few_events.csv")
firth_report("2x2, one zero cell (hand check: Haldane log OR)", "regression_2x2.csv")
