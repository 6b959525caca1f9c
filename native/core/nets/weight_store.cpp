#include "weight_store.h"

#include <cstring>

namespace bl {

static std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

Status WeightStore::take(const std::string& name, const std::vector<int64_t>& shape, Tensor* out) {
  if (listing_) {
    requests_.push_back({name, shape});
    *out = Tensor::empty(DType::F32, shape.data(), static_cast<int>(shape.size()));
    std::memset(out->data, 0, out->nbytes());
    return Status::ok();
  }
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    return Status::range_error("weights: missing key '" + name + "' (expected shape " + shape_str(shape) + ")");
  const Tensor& t = it->second;
  if (t.dtype != DType::F32)
    return Status::type_error("weights: key '" + name + "' has dtype " + dtype_name(t.dtype) + ", expected float32");
  // Linear weights [out, in] also serve as 1x1x1 convolutions [out, in, 1, 1, 1]: compare element layout.
  bool same = t.numel() > 0;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (same) {
    std::vector<int64_t> a(t.shape, t.shape + t.ndim), b = shape;
    while (a.size() > 1 && a.back() == 1) a.pop_back();
    while (b.size() > 1 && b.back() == 1) b.pop_back();
    same = a == b && n == t.numel();
  }
  if (!same)
    return Status::range_error("weights: key '" + name + "' has shape " + t.shape_string() + ", expected " + shape_str(shape));
  used_.insert(name);
  *out = Tensor::borrow(t.data, DType::F32, shape.data(), static_cast<int>(shape.size()));
  out->owner = t.owner;
  return Status::ok();
}

Status WeightStore::check_all_used() const {
  if (listing_) return Status::ok();
  std::string extra;
  int count = 0;
  for (auto& [name, t] : tensors_)
    if (!used_.count(name)) {
      if (count < 8) extra += (count ? ", '" : "'") + name + "' " + t.shape_string();
      ++count;
    }
  if (count)
    return Status::range_error("weights: " + std::to_string(count) + " unexpected key" + (count > 1 ? "s" : "") + " (" +
                               extra + (count > 8 ? ", ..." : "") + "): the checkpoint does not match the network arguments");
  return Status::ok();
}

}  // namespace bl
