// Includes nothing from qinfer but qinfer/quant/q6_k.hpp: the vendoring use case. Checks a
// round trip against a float reference computed here (hand-derived expectations, no oracle).
#include <qinfer/quant/q6_k.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
    constexpr int n = 512;
    std::vector<float> x(n), a(n), y(n);
    for (int i = 0; i < n; ++i) {
        x[i] = std::sin(0.37f * float(i)) * 2.0f;
        a[i] = std::cos(0.11f * float(i));
    }
    std::vector<qinfer::block_q6_K> w(n / 256);
    std::vector<qinfer::block_q8_K> act(n / 256);
    qinfer::quantize_row(x.data(), w.data(), n);
    qinfer::dequantize_row(w.data(), y.data(), n);
    qinfer::quantize_activations(a.data(), act.data(), n);
    std::vector<float> ad(n);
    qinfer::dequantize_row(act.data(), ad.data(), n);
    // 6-bit quantization of values in [-2, 2]: each weight within about half a step (the
    // largest magnitude maps to 32 levels: 2/32/2 = 0.031, plus the scales' rounding).
    // The dot must equal the double-precision dot of the two dequantized operands up to
    // float summation error.
    double max_err = 0, exact = 0, scale = 0;
    for (int i = 0; i < n; ++i) {
        max_err = std::fmax(max_err, std::fabs(double(y[i]) - x[i]));
        exact += double(y[i]) * ad[i];
        scale += std::fabs(double(y[i]) * ad[i]);
    }
    const float d = qinfer::dot(w.data(), act.data(), n);
    std::printf("q6_K standalone: max |dequant - x| = %.4f, dot = %.6f, double dot of the operands = %.6f\n", max_err, d, exact);
    if (max_err > 0.05 || std::fabs(d - exact) > 1e-5 * scale) {
        std::printf("FAILED\n");
        return 1;
    }
    std::printf("1 passed, 0 failed\n");
    return 0;
}
