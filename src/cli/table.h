// A text table with columns as wide as their widest cell, for `usmc ss` and
// `usmc stats`.
#ifndef USMC_CLI_TABLE_H_
#define USMC_CLI_TABLE_H_

#include <string>
#include <vector>

namespace usmc::cli {

class Table {
 public:
  // right_aligned[i]: column i holds numbers.
  explicit Table(std::vector<bool> right_aligned = {})
      : right_(std::move(right_aligned)) {}
  void AddRow(std::vector<std::string> cells) {
    rows_.push_back(std::move(cells));
  }

  std::string Render(const std::string& indent = "") const {
    std::vector<size_t> width;
    for (const auto& row : rows_) {
      if (width.size() < row.size()) width.resize(row.size(), 0);
      for (size_t i = 0; i < row.size(); ++i)
        width[i] = std::max(width[i], row[i].size());
    }
    std::string out;
    for (const auto& row : rows_) {
      std::string line = indent;
      for (size_t i = 0; i < row.size(); ++i) {
        bool last = i + 1 == row.size();
        std::string pad(width[i] - row[i].size(), ' ');
        bool right = i < right_.size() && right_[i];
        line += right ? pad + row[i] : (last ? row[i] : row[i] + pad);
        if (!last) line += "  ";
      }
      out += line + "\n";
    }
    return out;
  }

 private:
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace usmc::cli

#endif  // USMC_CLI_TABLE_H_
