# Reference values for the shift analysis (run: Rscript tests/reference/shift_reference.R
# from the repository root; output in tests/reference/shift_reference.txt).
# R 4.2.2, MASS 7.3: polr(factor(mrs_3m) ~ exposed [+ age_years], method = "logistic"),
# whose exp(coef) is the common OR towards a worse mRS; Wald CI and p from the
# observed information (the Hessian polr returns), optimised to a tight tolerance so
# that the estimates, not optim's stopping rule, are compared.
suppressPackageStartupMessages(library(MASS))
options(digits = 12)
dir <- "tests/reference"
for (name in c("shift_cohort", "shift_zero_cell")) {
  data <- read.csv(file.path(dir, paste0(name, ".csv")))
  for (formula in c("factor(mrs_3m) ~ exposed", "factor(mrs_3m) ~ exposed + age_years")) {
    fit <- polr(as.formula(formula), data = data, method = "logistic", Hess = TRUE,
                control = list(reltol = 1e-14, maxit = 10000))
    b <- coef(fit)[["exposed"]]
    se <- sqrt(diag(vcov(fit)))[["exposed"]]
    z <- b / se
    cat(sprintf("%s | %s | n %d | common_or %.12g | ci %.12g %.12g | p %.12g\n",
                name, formula, nrow(data), exp(b), exp(b - qnorm(0.975) * se),
                exp(b + qnorm(0.975) * se), 2 * pnorm(-abs(z))))
  }
}
