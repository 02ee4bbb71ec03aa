import CMultiheadABI
import Foundation
import Multihead

/// What an `mh_encoder` handle owns: one of the three encoder modules and C copies of its
/// parameter names.
final class EncoderHandle {
    enum Kind { case layer, encoder, layerNorm }

    let module: StateDictModule
    let kind: Kind
    let names: [UnsafeMutablePointer<CChar>]
    let shapes: [[Int]]

    init(_ module: StateDictModule, kind: Kind) {
        self.module = module
        self.kind = kind
        let parameters = module.parameterShapes
        names = parameters.map { strdup($0.name)! }
        shapes = parameters.map(\.shape)
    }

    deinit { names.forEach { free($0) } }

    var kindName: String {
        switch kind {
        case .layer: return "a TransformerEncoderLayer"
        case .encoder: return "a TransformerEncoder"
        case .layerNorm: return "a LayerNorm"
        }
    }
}

/// The model behind an `mh_bert` handle.
final class BertHandle {
    let model: BertModel
    init(_ model: BertModel) { self.model = model }
}

/// A live handle of type `T`, or an error naming the argument and the C type it should be.
func resolveHandle<T: AnyObject>(_ handle: OpaquePointer?, as type: T.Type, _ name: String, _ cType: String) throws -> T {
    guard handle != nil else { throw ABIError.invalid("\(name) is NULL") }
    do {
        return try Handles.resolve(handle, as: type, name)
    } catch {
        throw ABIError.invalid("\(name) is not a live \(cType) handle (destroyed, or never created)")
    }
}

/// Copies a strided float32 view into a row-major array of the same shape, or back.
func forEachStridedIndex(_ shape: [Int], _ strides: [Int], _ body: (_ linear: Int, _ offset: Int) -> Void) {
    let count = shape.reduce(1, *)
    var index = [Int](repeating: 0, count: shape.count)
    for linear in 0..<count {
        var offset = 0
        for (i, s) in zip(index, strides) { offset += i * s }
        body(linear, offset)
        var axis = shape.count - 1
        while axis >= 0 {
            index[axis] += 1
            if index[axis] < shape[axis] { break }
            index[axis] = 0
            axis -= 1
        }
    }
}
