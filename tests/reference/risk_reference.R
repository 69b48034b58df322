# Reference values for tests/test_stats.py (run: Rscript tests/reference/risk_reference.R)
# R 4.2.2, epiR 2.0.57. Output in risk_reference.txt.
suppressMessages(library(epiR))
options(digits = 10)
cohort <- function(label, a, n1, c, n0) {
  tab <- matrix(c(a, n1 - a, c, n0 - c), nrow = 2, byrow = TRUE)
  cat("==", label, ": a =", a, "n1 =", n1, "c =", c, "n0 =", n0, "\n")
  e <- suppressWarnings(epi.2by2(as.table(tab), method = "cohort.count", conf.level = 0.95))
  m <- e$massoc.detail
  print(m$RR.strata.wald)
  print(m$OR.strata.wald)
  print(m$ARisk.strata.wald)   # risk difference * 100
  print(m$NNT.strata.wald)
  cat("fisher.test p =", format(fisher.test(tab)$p.value, digits = 12), "\n")
  # Katz Wald z test of ln RR
  se <- sqrt(1 / a - 1 / n1 + 1 / c - 1 / n0)
  z <- log((a / n1) / (c / n0)) / se
  cat("wald p =", format(2 * pnorm(-abs(z)), digits = 12), "\n")
}
cohort("age_70_plus", 16, 23, 22, 62)
cohort("rd_spans_0", 3, 10, 5, 20)
cohort("zero_nonevent_cell", 5, 5, 22, 62)
cohort("benefit", 2, 20, 10, 25)
cohort("haldane", 0.5, 11, 5.5, 21)  # a = 0 of 10, c = 5 of 20 after +0.5 per cell
cat("== fisher zero exposed events: p =", fisher.test(matrix(c(0, 10, 5, 15), 2, byrow = TRUE))$p.value, "\n")
cat("== diagnostic (Table II)\n")
dt <- as.table(matrix(c(66, 5, 1, 13), nrow = 2, byrow = TRUE))
d <- epi.tests(dt, method = "exact", conf.level = 0.95)
print(d$detail)
cat("fisher.test p =", format(fisher.test(dt)$p.value, digits = 12), "\n")
cat("== diagnostic (Sp = 1): TP 10 FP 0 FN 2 TN 5\n")
d <- suppressWarnings(epi.tests(as.table(matrix(c(10, 0, 2, 5), nrow = 2, byrow = TRUE)), method = "exact"))
print(d$detail)
cat("fisher.test p =", format(fisher.test(matrix(c(10, 0, 2, 5), 2, byrow = TRUE))$p.value, digits = 12), "\n")
cat("== diagnostic (Se = 1): TP 10 FP 2 FN 0 TN 5\n")
d <- suppressWarnings(epi.tests(as.table(matrix(c(10, 2, 0, 5), nrow = 2, byrow = TRUE)), method = "exact"))
print(d$detail)
cat("== binom.test exact CI 0/5, 5/5, 16/85\n")
print(binom.test(0, 5)$conf.int); print(binom.test(5, 5)$conf.int); print(binom.test(16, 85)$conf.int)
cat("== descriptives x = c(28, 55, 60, 64, 64, 70, 72, 81, 101)\n")
x <- c(28, 55, 60, 64, 64, 70, 72, 81, 101, NA)
cat("mean", mean(x, na.rm = TRUE), "sd", sd(x, na.rm = TRUE), "\n")
cat("type7", quantile(x, c(.25, .5, .75), type = 7, na.rm = TRUE), "\n")
cat("type6", quantile(x, c(.25, .5, .75), type = 6, na.rm = TRUE), "\n")
cat("== paper Table I rows reconstructed (exposed events a of n1; 85 patients, 38 poor;",
    "anterior 62/23 poor, posterior 23/15 poor): Wald and Fisher p\n")
recon <- list(age_70_plus = c(16, 23, 22, 62), posterior_circulation = c(15, 23, 23, 62),
              procedure_over_60min = c(32, 60, 6, 25), sich = c(4, 4, 34, 81),
              new_infarct = c(2, 3, 36, 82), pc_aspects_lt6 = c(8, 8, 7, 15),
              smoking = c(23, 40, 15, 45), diabetes = c(21, 39, 17, 46))
for (k in names(recon)) {
  v <- recon[[k]]; a <- v[1]; n1 <- v[2]; c <- v[3]; n0 <- v[4]
  se <- sqrt(1 / a - 1 / n1 + 1 / c - 1 / n0); rr <- (a / n1) / (c / n0)
  cat(k, "RR", rr, "CI", exp(log(rr) + c(-1, 1) * qnorm(0.975) * se),
      "wald p", format(2 * pnorm(-abs(log(rr) / se)), digits = 10),
      "fisher p", format(fisher.test(matrix(c(a, n1 - a, c, n0 - c), 2, byrow = TRUE))$p.value, digits = 10), "\n")
}
